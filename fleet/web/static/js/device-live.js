// Keeps the device page's live-state figures current by polling its JSON twin.
// Without JavaScript the page's "Refresh" link reloads it instead.
const root = document.querySelector("[data-device-live]");

function field(name) {
  return root.querySelector(`[data-live="${name}"]`);
}

function setText(name, text) {
  const el = field(name);
  if (el && el.textContent !== text) {
    el.textContent = text;
  }
}

function setTag(name, tag) {
  const el = field(name);
  if (!el) {
    return;
  }
  el.className = `govuk-tag ${tag.classes}`;
  el.textContent = tag.text;
}

function cell(tag, text, classes) {
  const el = document.createElement(tag);
  el.className = classes;
  el.textContent = text;
  if (tag === "th") {
    el.scope = "row";
  }
  return el;
}

function setMetrics(metrics) {
  const body = field("metrics");
  if (!body) {
    return;
  }
  const rows = metrics.map(([name, value]) => {
    const row = document.createElement("tr");
    row.className = "govuk-table__row";
    row.append(
      cell("th", name, "govuk-table__header"),
      cell("td", value, "govuk-table__cell govuk-table__cell--numeric"),
    );
    return row;
  });
  if (rows.length) {
    body.replaceChildren(...rows);
  }
}

function apply(live) {
  const before = field("status")?.textContent;
  setTag("status", live.status);
  setTag("health", live.health);
  setText("last_seen_text", live.last_seen_text);
  setText("last_seen_at", live.last_seen_at);
  setText("agent_version", live.agent_version);
  setText("config_version", live.config_version);
  setText("checked", `Checked at ${live.checked_at}.`);
  setMetrics(live.metrics);
  if (before !== live.status.text) {
    setText("announce", `Device is now ${live.status.text}`);
  }
}

async function refresh() {
  try {
    const response = await fetch(root.dataset.deviceLive, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      throw new Error(`status ${response.status}`);
    }
    apply(await response.json());
  } catch (error) {
    setText("checked", "Could not check just now; trying again shortly.");
    console.warn("device live state refresh failed", error);
  }
}

if (root && window.fetch) {
  const seconds = Number.parseInt(root.dataset.interval || "10", 10);
  root.dataset.liveActive = "true";
  window.setInterval(() => {
    if (!document.hidden) {
      refresh();
    }
  }, seconds * 1000);
}
