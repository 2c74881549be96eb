// Tidegate console: live history rows over server-sent events, and a drop zone for imports.
// Plain browser JavaScript (no library, no build step); the server renders every row, escaped.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const state = document.getElementById("live-state");
  document.querySelectorAll("tbody[data-live]").forEach((rows) => {
    const source = new EventSource(rows.dataset.live);
    source.addEventListener("rows", (event) => {
      // The fragment was rendered by the server's autoescaping template.
      rows.innerHTML = event.data;
      if (state) state.textContent = "Live: updated " + new Date().toLocaleTimeString();
    });
    source.onerror = () => { if (state) state.textContent = "Live: reconnecting…"; };
  });
  const heading = document.getElementById("upload-name");
  if (heading && heading.dataset.live) {
    // An upload still running: its status and bar advance; once final, the page is
    // rendered again for its counts and rejected lines.
    const source = new EventSource(heading.dataset.live);
    source.addEventListener("upload", (event) => {
      const doc = JSON.parse(event.data);
      const status = document.getElementById("upload-status");
      status.textContent = doc.status;
      status.className = "status status-" + doc.status;
      document.getElementById("upload-progress").value = doc.percent;
      document.getElementById("upload-decided").textContent = doc.decided + " / " + doc.read;
      if (["success", "partial", "warning", "fail"].includes(doc.status)) {
        source.close();
        window.location.reload();
      }
    });
  }
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("file");
  if (zone && input) {
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    });
  }
});
