// Keeps a fault report on this device when the connection drops, and sends it when it returns.
// Without this script the form posts normally; with it, a report is never lost to a dead signal.
// Each report carries its form's idempotency key, so sending it twice still makes one fault.

const DB_NAME = "estate-faults";
const STORE = "queued-reports";
const notice = document.getElementById("faults-queue");
const form = document.querySelector("form[data-faults-queue='report']");
let flushing = false;

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, work) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(request ? request.result : undefined); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}

const saveReport = (record) => withStore("readwrite", (store) => store.put(record));
const queuedReports = () => withStore("readonly", (store) => store.getAll());
const forgetReport = (key) => withStore("readwrite", (store) => store.delete(key));

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function csrfToken() {
  const meta = document.querySelector("meta[name='csrf-token']");
  return meta ? meta.content : "";
}

function say(kind, lines, link) {
  if (!notice) return;
  notice.replaceChildren();
  notice.className = "faults-queue" + (kind ? " faults-queue--" + kind : "");
  for (const line of lines) {
    const p = document.createElement("p");
    p.className = "govuk-body";
    p.textContent = line;
    notice.append(p);
  }
  if (link) {
    const a = document.createElement("a");
    a.className = "govuk-link";
    a.href = link.href;
    a.textContent = link.text;
    notice.append(a);
  }
  notice.hidden = false;
}

function placeOf(record) {
  const field = record.fields.find(([name]) => name === "location" || name === "place");
  return field && field[1] ? field[1] : "the place you chose";
}

async function keep(data) {
  const fields = [];
  let photo = null;
  for (const [name, value] of data.entries()) {
    if (value instanceof File) {
      if (value.size > 0) photo = value;
    } else {
      fields.push([name, value]);
    }
  }
  const key = data.get("idempotency_key");
  const record = { key, fields, photo, savedAt: new Date().toISOString() };
  await saveReport(record);
  say("", [
    `No connection: your report for ${placeOf(record)} is saved on this device.`,
    "It will be sent by itself when the connection comes back. You can keep working.",
  ]);
  // A fresh key, so the next report on this form is a new fault, not a copy of this one.
  const keyInput = form.querySelector("input[name='idempotency_key']");
  form.reset();
  keyInput.value = keyInput.defaultValue = newKey();
}

async function send(record) {
  const data = new FormData();
  for (const [name, value] of record.fields) {
    data.append(name, name === "csrf_token" ? csrfToken() || value : value);
  }
  data.set("action", "report");
  if (record.photo) data.append("photo", record.photo, record.photo.name);
  const response = await fetch("/faults/new", {
    method: "POST",
    body: data,
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  const json = (response.headers.get("content-type") || "").includes("application/json");
  return { response, body: json ? await response.json() : null };
}

async function flush() {
  if (flushing || !navigator.onLine) return;
  flushing = true;
  try {
    const records = await queuedReports();
    if (records.length) say("", [`Sending ${records.length} saved report(s)…`]);
    for (const record of records) {
      let outcome;
      try {
        outcome = await send(record);
      } catch (err) {
        say("", ["Still no connection: your saved report stays on this device."]);
        return;
      }
      const { response, body } = outcome;
      if (response.ok && body && body.reference) {
        await forgetReport(record.key);
        say("sent", [`Sent: your report for ${placeOf(record)} is fault ${body.reference}.`], {
          href: body.url,
          text: `Open fault ${body.reference}`,
        });
      } else if (body && body.errors) {
        say("problem", [
          `Your saved report for ${placeOf(record)} could not be sent as it is:`,
          ...Object.values(body.errors),
          "It is kept on this device. Open Report a fault to correct it.",
        ], { href: "/faults/new", text: "Report a fault" });
        if (form) restore(record);
      } else {
        say("problem", [
          "Your saved report could not be sent yet: sign in again, and it will be sent.",
        ], { href: "/sign-in?next=/faults/new", text: "Sign in" });
        return;
      }
    }
  } finally {
    flushing = false;
  }
}

// Put a saved report that the service refused back into the form, so nothing has to be retyped.
async function restore(record) {
  for (const [name, value] of record.fields) {
    if (name === "csrf_token" || name === "action") continue;
    for (const field of form.querySelectorAll(`[name='${CSS.escape(name)}']`)) {
      if (field.type === "radio" || field.type === "checkbox") field.checked = field.value === value;
      else if (field.type !== "file" && field.type !== "submit") field.value = value;
    }
  }
  await forgetReport(record.key);
}

if (form) {
  form.addEventListener("submit", async (event) => {
    const by = event.submitter;
    // The place finder's buttons go to the server the ordinary way.
    if (by && !(by.name === "action" && by.value === "report")) return;
    event.preventDefault();
    const data = new FormData(form);
    data.set("action", "report");
    if (!navigator.onLine) {
      await keep(data);
      return;
    }
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: data,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (err) {
      await keep(data);
      return;
    }
    const json = (response.headers.get("content-type") || "").includes("application/json");
    if (response.ok && json) {
      window.location.assign((await response.json()).url);
      return;
    }
    // A problem with what was typed (or an expired sign-in): send the form the ordinary way so
    // the page comes back with every answer kept and the problems listed.
    form.submit();
  });
}

window.addEventListener("online", flush);
flush();
