/* Small enhancements over the htmx-driven pages; every page reads fine without this file.
   - Live updates replace the tree: nodes the reader opened or closed stay that way.
   - The node whose details are shown is marked in the tree (and, on a phone, scrolled to). */
(function () {
  "use strict";
  var toggled = {};
  document.addEventListener("toggle", function (event) {
    var el = event.target;
    if (el.tagName === "DETAILS" && el.id && el.closest("#execution-tree")) { toggled[el.id] = el.open; }
  }, true);
  document.addEventListener("htmx:afterSettle", function (event) {
    Object.keys(toggled).forEach(function (id) {
      var el = document.getElementById(id);
      if (el && el.open !== toggled[id]) { el.open = toggled[id]; }
    });
    var shown = document.querySelector("#detail [data-node]");
    if (shown) { mark(shown.getAttribute("data-node")); }
    var detail = event.detail && event.detail.target;
    if (detail && detail.id === "detail" && getComputedStyle(detail).position !== "sticky") {
      detail.scrollIntoView({ block: "start" });  /* narrow screens: the detail sits below the tree */
    }
  });
  function mark(nodeId) {
    document.querySelectorAll("#execution-tree .selected").forEach(function (el) { el.classList.remove("selected"); });
    var li = document.getElementById("n-" + nodeId);
    if (li) { li.classList.add("selected"); }
  }
})();
