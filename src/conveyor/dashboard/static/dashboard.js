// Streams a running run's log lines into the page (server-sent events). Text only: every line
// goes in through textContent, never as HTML.
"use strict";
(function () {
  const logs = document.getElementById("logs");
  if (!logs || !logs.dataset.stream) return;
  function byStage(selector, stage) {
    for (const el of document.querySelectorAll(selector)) {
      if (el.dataset.stage === stage) return el;
    }
    return null;
  }
  function logOf(stage) {
    let section = byStage("section.log", stage);
    if (!section) {
      section = document.createElement("section");
      section.className = "log";
      section.dataset.stage = stage;
      const title = document.createElement("h3");
      title.textContent = stage;
      section.append(title, document.createElement("pre"));
      logs.append(section);
    }
    return section.querySelector("pre");
  }
  function boxOf(stage) {
    let box = byStage("#pipeline .stage", stage);
    if (!box) {
      box = document.createElement("div");
      box.dataset.stage = stage;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = stage;
      const result = document.createElement("span");
      result.className = "result";
      box.append(name, result);
      document.getElementById("pipeline").append(box);
    }
    return box;
  }
  function mark(stage, result) {
    const box = boxOf(stage);
    box.className = "stage result-" + result;
    box.querySelector(".result").textContent = result;
  }
  const source = new EventSource(logs.dataset.stream);
  source.addEventListener("line", function (message) {
    const item = JSON.parse(message.data);
    if (!item.stage) return;
    if (item.kind === "line") logOf(item.stage).append(document.createTextNode(item.text + "\n"));
    else if (item.kind === "start") { mark(item.stage, "running"); logOf(item.stage); }
    else if (item.kind === "skip") mark(item.stage, "skipped");
    else if (item.kind === "finish") mark(item.stage, JSON.parse(item.text).result);
  });
  source.addEventListener("end", function (message) {
    source.close();
    const status = document.getElementById("run-status");
    if (status) {
      const state = JSON.parse(message.data).status;
      status.textContent = state;
      status.className = "badge result-" + state;
    }
  });
})();
