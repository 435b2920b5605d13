// Starts ReDoc on /redoc (aiweb.api.apidocs) under the page's strict CSP, with no request
// leaving the server. Loaded before the ReDoc bundle, because the bundle inserts <style>
// elements as soon as it loads:
// - every <style> element created on this page carries the page's CSP nonce (the bundle's
//   style-loader and styled-components insert their CSS so; nothing else may);
// - the Redocly logo of the menu's footer is an <img> from cdn.redoc.ly that no option
//   turns off: its src is never set (the CSP would refuse it, offline it would fail), and
//   redoc-page.css hides the empty image;
// - system fonts, no web font.
(function () {
  "use strict";
  var element = document.getElementById("redoc");
  var nonce = element.getAttribute("data-nonce");
  var LOGO = "https://cdn.redoc.ly/";
  var isLogo = function (image, value) {
    return image instanceof HTMLImageElement && String(value).indexOf(LOGO) === 0;
  };

  var createElement = Document.prototype.createElement;
  Document.prototype.createElement = function () {
    var created = createElement.apply(this, arguments);
    if (created instanceof HTMLStyleElement && nonce) created.setAttribute("nonce", nonce);
    return created;
  };
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (String(name).toLowerCase() === "src" && isLogo(this, value)) return;
    return setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) {
      if (!isLogo(this, value)) src.set.call(this, value);
    },
  });

  var fonts =
    'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  document.addEventListener("DOMContentLoaded", function () {
    window.Redoc.init(
      element.getAttribute("data-spec-url"),
      {
        nonce: nonce,
        theme: {
          typography: {
            fontFamily: fonts,
            headings: { fontFamily: fonts },
            code: { fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace' },
          },
        },
      },
      element
    );
  });
})();
