// With JavaScript, offer a Print button; without it, the page tells people to use the browser's Print.
for (const button of document.querySelectorAll("[data-module=places-print]")) {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
  for (const hint of document.querySelectorAll(".places-print-hint")) hint.hidden = true;
}
