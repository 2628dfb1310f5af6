// The console's little script: copy buttons, reading branches from KiotViet, live sync progress.
// Every page works without it; it only saves retyping and reloading.
"use strict";

function setErrors(form, errors) {
  form.querySelectorAll("[data-errors-for]").forEach((list) => {
    const messages = errors[list.dataset.errorsFor] || [];
    list.replaceChildren(...messages.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  });
}

function branchSelect(current, branches, choose) {
  const select = document.createElement("select");
  select.id = "branch_id";
  select.name = "branch_id";
  select.required = true;
  select.setAttribute("aria-describedby", "errors-branch_id");
  select.append(new Option(choose, ""));
  branches.forEach((branch) => {
    const option = new Option(`${branch.name || ""} (${branch.id})`, String(branch.id));
    option.selected = String(branch.id) === current;
    select.append(option);
  });
  return select;
}

async function readBranches(button) {
  const form = button.closest("form");
  const label = button.textContent;
  button.disabled = true;
  button.textContent = button.dataset.checking;
  try {
    const answer = await fetch(button.dataset.checkUrl, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    const found = await answer.json();
    setErrors(form, found.errors || {});
    const warnings = form.querySelector("[data-warnings]");
    warnings.replaceChildren(...(found.warnings || []).map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    warnings.hidden = !(found.warnings || []).length;
    if ((found.branches || []).length) {
      const field = form.querySelector("#branch_id");
      field.replaceWith(branchSelect(field.value, found.branches, button.dataset.choose));
    }
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

function showRun(section, run) {
  const labels = document.getElementById("state-labels");
  const state = section.querySelector("[data-run-state]");
  const label = labels && labels.content.querySelector(`[data-state="${run.state}"]`);
  state.textContent = label ? label.textContent : run.state;
  state.className = `state state-${run.state}`;
  Object.entries(run.entities).forEach(([name, entity]) => {
    const row = section.querySelector(`[data-entity="${name}"]`);
    if (!row) return;
    const bar = row.querySelector("progress");
    if (entity.percent === null) bar.removeAttribute("value"); else bar.value = entity.percent;
    row.querySelector(".pct").textContent = entity.percent === null ? "…" : `${entity.percent}%`;
    row.querySelector(".count").textContent = `${entity.done} / ${entity.total === null ? "?" : entity.total}`;
  });
  const errors = section.querySelector("[data-run-errors]");
  errors.replaceChildren(...run.errors.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  section.dataset.finished = run.finished ? "yes" : "no";
}

function followRun(section) {
  const poll = async () => {
    try {
      const answer = await fetch(section.dataset.progressUrl, { credentials: "same-origin" });
      if (answer.ok) showRun(section, await answer.json());
    } catch (error) {
      // the next poll tries again
    }
    if (section.dataset.finished !== "yes") setTimeout(poll, 1000);
  };
  setTimeout(poll, 500);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => navigator.clipboard.writeText(document.getElementById(button.dataset.copy).textContent));
  });
  document.querySelectorAll("[data-check-url]").forEach((button) => {
    button.addEventListener("click", () => readBranches(button));
  });
  const run = document.getElementById("run");
  if (run && run.dataset.finished === "no") followRun(run);
});
