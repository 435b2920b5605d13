// Starts Swagger UI on /docs (aiweb.api.apidocs): its settings come from the page's JSON
// data block, so the page runs no inline script and the strict CSP holds.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("swagger-ui-config").textContent);
  var redirectPath = config.oauth2RedirectPath;
  delete config.oauth2RedirectPath;
  if (redirectPath) config.oauth2RedirectUrl = window.location.origin + redirectPath;
  config.presets = [window.SwaggerUIBundle.presets.apis];
  window.ui = window.SwaggerUIBundle(config);
})();
