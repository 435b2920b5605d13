/* The vision playground (/vision): drop an image on the box around the file input to
   choose it, see which file is chosen, and a busy button while the model runs. No inline
   script (strict CSP). Without JavaScript the file input and the plain form still work. */
(function () {
  "use strict";

  function sizeText(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MiB";
  }

  function carriesFiles(event) {
    var types = event.dataTransfer ? event.dataTransfer.types : null;
    return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
  }

  function init() {
    var zone = document.getElementById("vision-drop");
    var input = document.getElementById("vision-image");
    if (!zone || !input) return;
    var chosen = document.getElementById("vision-chosen");
    var hint = document.getElementById("vision-drop-hint");
    var button = document.getElementById("vision-submit");
    var label = button ? button.textContent : "";
    if (hint) hint.hidden = false;

    function show() {
      var file = input.files && input.files[0];
      if (chosen) chosen.textContent = file ? "Chosen: " + file.name + " (" + sizeText(file.size) + ")" : "";
    }

    function over(event) {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    }
    zone.addEventListener("dragenter", over);
    zone.addEventListener("dragover", over);
    zone.addEventListener("dragleave", function (event) {
      if (!event.relatedTarget || !zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", function (event) {
      zone.classList.remove("dragging");
      if (!carriesFiles(event)) return;
      event.preventDefault();
      var files = event.dataTransfer.files;
      if (!files || !files.length) return;
      var one = new DataTransfer();  // the form takes one image
      one.items.add(files[0]);
      input.files = one.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", show);

    /* A file dropped beside the box would make the browser leave the page to show it. */
    document.addEventListener("dragover", function (event) {
      if (carriesFiles(event) && !zone.contains(event.target)) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "none";
      }
    });
    document.addEventListener("drop", function (event) {
      if (carriesFiles(event) && !zone.contains(event.target)) event.preventDefault();
    });

    if (input.form && button) {
      input.form.addEventListener("submit", function () {
        button.textContent = "Running the model\u2026";
        button.setAttribute("aria-busy", "true");
      });
      /* back to this page from the browser's history: the button is ready again */
      window.addEventListener("pageshow", function () {
        button.textContent = label;
        button.removeAttribute("aria-busy");
        show();
      });
    }
    show();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
