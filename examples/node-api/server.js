// node-api: /health answers 200 once the API token the deploy's secret provides is set (503 without
// it), /version the build's APP_VERSION.
"use strict";
const http = require("node:http");

function handler(env) {
  return (req, res) => {
    const send = (code, body) => {
      res.writeHead(code, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.url === "/health") {
      return env.API_TOKEN ? send(200, { status: "ok" }) : send(503, { status: "no API_TOKEN" });
    }
    if (req.url === "/version") return send(200, { version: env.APP_VERSION || "dev" });
    return send(404, { error: "not found" });
  };
}

if (require.main === module) {
  const port = Number(process.env.PORT || 3000);
  http.createServer(handler(process.env)).listen(port, () => console.log(`node-api on ${port}`));
}

module.exports = { handler };
