"""Pages to create and edit job templates, for the people the API lets manage them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from fleet.api.deps import DbSession, Principal
from fleet.db import utcnow
from fleet.devices.schemas import DeviceKind
from fleet.jobs import service
from fleet.jobs.forms import FormProblem
from fleet.jobs.models import JobTemplate
from fleet.jobs.template_form import (
    TemplateForm,
    check_defaults,
    problem_of_refusal,
    shipped_playbooks,
    to_template,
    version_of,
)
from fleet.web.shell import PagePrincipal, require_page_permission
from fleet.web.templating import CsrfChecked, make_templates, page_context

router = APIRouter(include_in_schema=False)
templates = make_templates()
KINDS = list(DeviceKind.__args__)  # type: ignore[attr-defined]
# The same permission the API asks for to create or change a template.
MANAGE = "jobs:templates"


def _form_page(
    request: Request,
    principal: Principal,
    form: TemplateForm,
    *,
    template: JobTemplate | None = None,
    errors: list[dict[str, str]] | None = None,
) -> Response:
    action = "Edit" if template else "Create"
    title = f"{action} job template" + (f" {template.name}" if template else "")
    response = templates.TemplateResponse(
        request,
        "jobs/template_form.html",
        page_context(
            request,
            active_nav="jobs",
            page_title=("Error: " if errors else "") + title,
            heading=title,
            principal=principal,
            template=template,
            form=form,
            kinds=KINDS,
            playbooks=shipped_playbooks(),
            errors=errors or [],
            error_fields={e["href"].lstrip("#") for e in errors or []},
        ),
    )
    if errors:
        response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    return response


def _template(session: Session, template_id: int, lock: bool = False) -> JobTemplate:
    template = session.get(JobTemplate, template_id, with_for_update=lock)
    if template is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Page not found")
    return template


def _saved(template_id: int) -> Response:
    return RedirectResponse(f"/jobs/templates?saved={template_id}", status.HTTP_303_SEE_OTHER)


@router.get("/jobs/templates/new", response_class=HTMLResponse)
def new_template_page(request: Request, principal: PagePrincipal) -> Response:
    require_page_permission(principal, MANAGE)
    return _form_page(request, principal, TemplateForm())


@router.post("/jobs/templates/new", response_class=HTMLResponse)
async def create_template_submit(
    request: Request, session: DbSession, principal: PagePrincipal, _csrf: None = CsrfChecked
) -> Response:
    require_page_permission(principal, MANAGE)
    submitted = await request.form()
    return await run_in_threadpool(_create, request, session, principal, submitted)


def _create(
    request: Request, session: Session, principal: Principal, submitted: FormData
) -> Response:
    form = TemplateForm.of_form(submitted)
    try:
        data = to_template(form)
        check_defaults(data)
        template = service.create_template(
            session=session, actor=principal.username, data=data, now=utcnow()
        )
    except FormProblem as exc:
        return _form_page(request, principal, form, errors=exc.errors)
    except service.JobRefused as exc:
        return _form_page(request, principal, form, errors=[problem_of_refusal(exc)])
    return _saved(template.id)


@router.get("/jobs/templates/{template_id}/edit", response_class=HTMLResponse)
def edit_template_page(
    template_id: int, request: Request, session: DbSession, principal: PagePrincipal
) -> Response:
    require_page_permission(principal, MANAGE)
    template = _template(session, template_id)
    return _form_page(request, principal, TemplateForm.of_template(template), template=template)


@router.post("/jobs/templates/{template_id}/edit", response_class=HTMLResponse)
async def edit_template_submit(
    template_id: int,
    request: Request,
    session: DbSession,
    principal: PagePrincipal,
    _csrf: None = CsrfChecked,
) -> Response:
    require_page_permission(principal, MANAGE)
    submitted = await request.form()
    return await run_in_threadpool(_update, template_id, request, session, principal, submitted)


def _update(
    template_id: int,
    request: Request,
    session: Session,
    principal: Principal,
    submitted: FormData,
) -> Response:
    template = _template(session, template_id, lock=True)
    form = TemplateForm.of_form(submitted)
    page: dict[str, Any] = {"template": template}
    if form.version != version_of(template):
        # Carry the current version so that saving again is a deliberate overwrite.
        form.version = version_of(template)
        stale = {
            "text": f"Someone else changed this template since you opened it, at "
            f"{template.updated_at:%d %b %Y %H:%M:%S}. Check your changes against theirs on "
            "the template's page, then save again to replace them",
            "href": "#name",
        }
        return _form_page(request, principal, form, errors=[stale], **page)
    try:
        data = to_template(form)
        if data.variables != template.variables or data.variables_schema != (
            template.variables_schema or {"type": "object"}
        ):
            check_defaults(data)
        service.update_template(
            session=session, actor=principal.username, template=template, data=data, now=utcnow()
        )
    except FormProblem as exc:
        return _form_page(request, principal, form, errors=exc.errors, **page)
    except service.JobRefused as exc:
        # The service refuses before it changes anything, so there is nothing to undo.
        return _form_page(request, principal, form, errors=[problem_of_refusal(exc)], **page)
    return _saved(template.id)
