// Streams a job's output into its page: Server-Sent Events where the browser has them, else
// polling the events API. Without JavaScript the page's "Refresh" link reloads it instead.
const root = document.querySelector("[data-job-live]");
const FINAL = new Set(["successful", "failed", "cancelled", "aborted", "rejected"]);
const POLL_MS = 1000;
// New lines are added at most this often, so a screen reader hears one addition at a time.
const FLUSH_MS = 1000;
// Above this many new lines at once, the log stays quiet and a summary is announced instead.
const ANNOUNCE_LINES = 3;

const output = root ? root.querySelector('[data-live="output"]') : null;
const summary = root ? root.querySelector("[data-live-summary]") : null;
let pending = [];
let flushTimer = null;

function flush() {
  flushTimer = null;
  if (!pending.length) {
    return;
  }
  const lines = pending;
  pending = [];
  const stick = output.scrollTop + output.clientHeight >= output.scrollHeight - 5;
  const flood = lines.length > ANNOUNCE_LINES;
  if (flood) {
    output.setAttribute("aria-live", "off");
  }
  output.append(document.createTextNode(lines.join("\n") + "\n"));
  if (flood) {
    if (summary) {
      summary.textContent = `${lines.length} new lines of output`;
    }
    setTimeout(() => output.setAttribute("aria-live", "polite"), FLUSH_MS);
  }
  if (stick) {
    output.scrollTop = output.scrollHeight;
  }
}

function show(lines) {
  pending.push(...lines);
  if (flushTimer === null) {
    flushTimer = setTimeout(flush, FLUSH_MS);
  }
}

function reload() {
  // Stages, hosts and buttons depend on the status: show them as the server renders them.
  flush();
  window.location.reload();
}

async function poll(jobId, after, status) {
  let response;
  try {
    response = await fetch(`/api/v1/jobs/${jobId}/events?after=${after}&limit=500`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch {
    return { after, status, ok: false };
  }
  if (!response.ok) {
    return { after, status, ok: false };
  }
  const page = await response.json();
  const lines = page.items.map((e) => e.stdout).filter((text) => text);
  if (lines.length) {
    show(lines);
  }
  return { after: page.last_id, status: page.status, ok: true, more: page.items.length >= 500 };
}

async function follow(after) {
  const jobId = root.dataset.jobLive;
  const initial = root.dataset.status;
  let status = initial;
  for (;;) {
    const result = await poll(jobId, after, status);
    after = result.after;
    if (result.ok && result.status !== initial) {
      reload();
      return;
    }
    if (FINAL.has(status) && !result.more) {
      return;
    }
    status = result.status;
    if (!result.more) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}

function stream() {
  const jobId = root.dataset.jobLive;
  const initial = root.dataset.status;
  let after = Number(root.dataset.lastEvent || 0);
  let received = false;
  const source = new EventSource(`/jobs/${jobId}/events?after=${after}`);
  source.addEventListener("output", (message) => {
    received = true;
    const event = JSON.parse(message.data);
    after = event.id;
    if (event.stdout) {
      show([event.stdout]);
    }
  });
  source.addEventListener("status", (message) => {
    received = true;
    if (JSON.parse(message.data).status !== initial) {
      source.close();
      reload();
    }
  });
  source.addEventListener("end", () => {
    source.close();
    flush();
  });
  source.addEventListener("error", () => {
    // The browser reconnects by itself (with Last-Event-ID) unless the stream was refused.
    if (source.readyState === EventSource.CLOSED || !received) {
      source.close();
      follow(after);
    }
  });
}

if (root) {
  if ("EventSource" in window) {
    stream();
  } else if (!FINAL.has(root.dataset.status)) {
    follow(Number(root.dataset.lastEvent || 0));
  }
}
