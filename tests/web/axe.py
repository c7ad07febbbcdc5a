"""Run axe-core (from node_modules) in a Playwright page and report serious or critical issues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe violations of impact serious or critical on the current page.

    The page's context must be created with bypass_csp=True: the axe script is injected
    as a script element, which the site's Content-Security-Policy would otherwise refuse.
    """
    assert AXE.is_file(), f"{AXE} is missing; run `make assets` (npm ci)"
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")).slice(0, 5),
            }));
        }""",
        WCAG_TAGS,
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]
