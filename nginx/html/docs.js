// /docs: Swagger UI renders /openapi.json (generated from proto/ by scripts/openapi.sh). "Try it out" sends real
// requests to this same origin. No validator badge (it would call validator.swagger.io): nothing leaves this host.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  docExpansion: 'list',
  defaultModelsExpandDepth: 1,
  displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
