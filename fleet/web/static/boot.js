// GOV.UK Frontend styles its components for JavaScript once these classes are on <body>.
document.body.classList.add("js-enabled");
if ("noModule" in HTMLScriptElement.prototype) {
  document.body.classList.add("govuk-frontend-supported");
}
