/* Printing a page (the browser's Print, or tools/book_pdf.py for the whole book).
 *
 * A kernel-free widget (curvlib.widgets.Explorer) shows one frame at a time; on paper the
 * slider cannot move, so before printing every widget gets a grid of all its frames, each
 * captioned with its control values and its summary line (the frames, the values and each
 * frame's alternative text are in the widget's own JSON). The print styles in curvlib.css
 * hide the controls and show the grid; on screen the grid is never built.
 *
 * Columns: the values of the last controls (one row per value of the others), so the grid
 * reads as a table of small multiples; at most four columns.
 */
(function () {
  "use strict";

  function columns(labels) {
    var cols = 1;
    for (var i = labels.length - 1; i >= 0; i--) {
      if (cols * labels[i].length > 4) break;
      cols *= labels[i].length;
    }
    return cols > 1 ? cols : 3;
  }

  /* `text` into `parent`, a word with a hyphen kept on one line: "L-BFGS" broken at its hyphen
   * reads as "LBFGS" once the PDF's text is extracted (pdftotext joins hyphenated lines). */
  function words(parent, text) {
    var parts = text.split(" ");
    for (var i = 0; i < parts.length; i++) {
      if (i > 0) parent.appendChild(document.createTextNode(" "));
      if (parts[i].indexOf("-") < 0) {
        parent.appendChild(document.createTextNode(parts[i]));
      } else {
        var span = document.createElement("span");
        span.className = "cx-nobreak";
        span.textContent = parts[i];
        parent.appendChild(span);
      }
    }
  }

  function grid(root) {
    if (root.querySelector(".cx-print")) return;
    var node = root.querySelector("script.cx-data");
    if (!node) return;
    var data = JSON.parse(node.textContent);
    var names = data.names || Array.prototype.map.call(  // outputs made before "names" existed
      root.querySelectorAll(".cx-control > span"), function (s) { return s.textContent; });
    var box = document.createElement("div");
    box.className = "cx-print";
    box.style.setProperty("--cx-columns", columns(data.labels));
    for (var k = 0; k < data.frames.length; k++) {
      var f = data.frames[k], rest = k, values = [];
      for (var i = data.labels.length - 1; i >= 0; i--) {  // row-major: last control fastest
        var n = data.labels[i].length;
        values.unshift((names[i] ? names[i] + " = " : "") + data.labels[i][rest % n]);
        rest = Math.floor(rest / n);
      }
      var fig = document.createElement("figure");
      fig.className = "cx-cell";
      var img = document.createElement("img");
      img.src = data.images[f[0]];
      img.alt = f[3] || values.join(", ");
      var cap = document.createElement("figcaption");
      var head = document.createElement("span");
      head.className = "cx-values";
      words(head, values.join(", "));
      cap.appendChild(head);
      if (f[1]) {
        var text = document.createElement("span");
        text.className = "cx-summary" + (f[2] === 1 ? " cx-diverged" : "");
        text.textContent = f[1];
        cap.appendChild(text);
      }
      fig.appendChild(img);
      fig.appendChild(cap);
      box.appendChild(fig);
    }
    root.appendChild(box);
  }

  /* Build the grid of every widget under `scope` (default: the whole page). */
  window.curvlibPrintGrids = function (scope) {
    var roots = (scope || document).querySelectorAll(".curvlib-explorer");
    for (var i = 0; i < roots.length; i++) grid(roots[i]);
    return roots.length;
  };
  window.addEventListener("beforeprint", function () { window.curvlibPrintGrids(); });
})();
