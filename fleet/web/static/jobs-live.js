// Streams a job's output into its page by polling the events API while the job is live.
// Without JavaScript the page's "Refresh" link reloads it instead.
const root = document.querySelector("[data-job-live]");
const FINAL = new Set(["successful", "failed", "cancelled", "aborted", "rejected"]);
const POLL_MS = 1000;

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
  const output = root.querySelector('[data-live="output"]');
  const lines = page.items.map((e) => e.stdout).filter((text) => text);
  if (lines.length) {
    const stick = output.scrollTop + output.clientHeight >= output.scrollHeight - 5;
    output.append(document.createTextNode(lines.join("\n") + "\n"));
    if (stick) {
      output.scrollTop = output.scrollHeight;
    }
  }
  return { after: page.last_id, status: page.status, ok: true, more: page.items.length >= 500 };
}

async function follow() {
  const jobId = root.dataset.jobLive;
  let after = Number(root.dataset.lastEvent || 0);
  const initial = root.dataset.status;
  let status = initial;
  for (;;) {
    const result = await poll(jobId, after, status);
    after = result.after;
    if (result.ok && result.status !== initial) {
      // Stages, hosts and buttons depend on the status: show them as the server renders them.
      window.location.reload();
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

if (root) {
  follow();
}
