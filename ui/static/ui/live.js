// A job's page follows the job's event stream (GET /jobs/{id}/stream, signed in by the session): each new event
// becomes a row of the timeline and the status badge follows the job. Without JavaScript, or without
// EventSource, the page stays as the server rendered it, complete; reload it to see more.
(function () {
  "use strict";
  var timeline = document.querySelector("table.timeline[data-stream]");
  if (!timeline || !window.EventSource) return;
  var rows = timeline.tBodies[0];
  var badge = document.querySelector("[data-job-status]");
  var last = rows.rows.length ? Number(rows.rows[rows.rows.length - 1].dataset.seq) : 0;
  var source = new EventSource(timeline.dataset.stream + "?cursor=" + last);

  function cell(tag, text, className) {
    var element = document.createElement(tag);
    element.textContent = text;
    if (className) element.className = className;
    return element;
  }

  function when(iso) { // as the server writes it: 2026-01-02 03:04:05 UTC
    return iso.slice(0, 10) + " " + iso.slice(11, 19) + " UTC";
  }

  function addRow(event) {
    var row = document.createElement("tr");
    row.className = "event event-" + event.event_type.toLowerCase();
    row.dataset.seq = event.seq;
    var header = cell("th", event.event_type);
    header.scope = "row";
    var time = cell("time", when(event.recorded_at));
    time.dateTime = event.recorded_at;
    var timeCell = cell("td", "", "time");
    timeCell.appendChild(time);
    var payload = document.createElement("details");
    payload.className = "payload";
    payload.appendChild(cell("summary", "payload"));
    payload.appendChild(cell("pre", JSON.stringify(event.payload, null, 2), "json"));
    var note = cell("td", "", "note");
    note.appendChild(payload);
    [cell("td", event.seq), header, cell("td", event.step || ""), cell("td", event.actor.kind + ":" + event.actor.id, "actor"),
     timeCell, note].forEach(function (element) { row.appendChild(element); });
    rows.appendChild(row);
  }

  function showStatus(status) {
    if (!badge || !status) return;
    badge.className = "status status-" + status;
    badge.textContent = status.replace(/_/g, " ");
  }

  var asked = 0;
  function refreshStatus() { // the stream carries events; the job's status is the API's to say
    var mine = ++asked;
    fetch(timeline.dataset.job, {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (job) { if (job && mine === asked) showStatus(job.status); }) // only the latest answer
      .catch(function () {}); // the badge keeps its status until the next event asks again
  }

  source.addEventListener("end", function (message) {
    showStatus(JSON.parse(message.data).status);
    source.close();
    timeline.dataset.live = "ended";
  });
  source.addEventListener("cursor-invalid", function () { source.close(); timeline.dataset.live = "off"; });
  source.onopen = function () { timeline.dataset.live = "on"; };
  source.onerror = function () { if (timeline.dataset.live !== "ended") timeline.dataset.live = "reconnecting"; };
  // Every other named event is a job event: SSE has no catch-all listener, so listen for each type by name.
  (timeline.dataset.eventTypes || "").split(",").forEach(function (type) {
    source.addEventListener(type, function (message) {
      var event = JSON.parse(message.data);
      if (event.seq <= last) return;
      last = event.seq;
      addRow(event);
      refreshStatus();
    });
  });
})();
