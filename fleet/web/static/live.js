// Refreshes a region's figures from the server every few seconds without a full page load.
// The page already shows the figures and a Refresh link, so this only enhances it.
const region = document.querySelector("[data-live-url]");

async function refresh() {
  try {
    const response = await fetch(region.dataset.liveUrl, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
    });
    if (response.redirected) {
      return; // signed out: stop, and leave the figures as they were
    }
    if (response.ok) {
      region.innerHTML = await response.text();
    }
  } catch (error) {
    console.warn("Could not refresh the figures", error);
  }
  schedule();
}

function schedule() {
  const seconds = Number(region.dataset.refreshSeconds) || 10;
  window.setTimeout(refresh, seconds * 1000);
}

if (region) {
  schedule();
}
