// The event-log page in the browser's own time zone: times shown to the second, the exact value
// on hover, and the zone sent along with the filters so "From" and "Until" mean local times.
(function () {
  "use strict";
  var pad = function (n) { return String(n).padStart(2, "0"); };
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var at = new Date(el.getAttribute("datetime"));
    if (isNaN(at)) { return; }
    el.textContent = at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + " " +
      pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
    el.title = el.getAttribute("datetime") + " (" + (zone || "local time") + ")";
  });
  document.querySelectorAll(".zone-name").forEach(function (el) { el.textContent = zone || "local time"; });
  var tz = document.querySelector("form.filters input[name=tz]");
  if (tz && !tz.value && zone) { tz.value = zone; }
})();
