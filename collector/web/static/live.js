// Live rows: every table with data-live subscribes to its server-sent event stream and
// puts each finding that arrives at the top (replacing an older copy of the same row).
"use strict";
(function () {
  for (const table of document.querySelectorAll("table[data-live]")) {
    const body = table.tBodies[0];
    const status = table.nextElementSibling;
    const say = (text) => { if (status) status.textContent = text; };
    const source = new EventSource(table.dataset.live);
    source.onopen = () => say("Live updates: on");
    source.onerror = () => say("Live updates: reconnecting…");
    source.addEventListener("finding", (event) => {
      const data = JSON.parse(event.data);
      const old = body.querySelector(`tr[data-id="${data.id}"]`);
      if (old) old.remove();
      const holder = document.createElement("tbody");
      holder.innerHTML = data.html;
      const row = holder.firstElementChild;
      row.classList.add("fresh");
      body.prepend(row);
      const shown = document.getElementById("shown");
      if (shown) shown.textContent = body.rows.length;
      say(`Live updates: on (last at ${new Date().toISOString().slice(11, 19)}Z)`);
    });
  }
})();
