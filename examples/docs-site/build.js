// docs-site: renders content/*.txt into dist/*.html (one page each, text escaped) and an index.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const escape = (s) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const page = (title, body) =>
  `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>` +
  `<body>${body}</body></html>\n`;

fs.rmSync("dist", { recursive: true, force: true });
fs.mkdirSync("dist");
const names = fs.readdirSync("content").filter((n) => n.endsWith(".txt")).sort();
for (const name of names) {
  const text = fs.readFileSync(path.join("content", name), "utf8");
  const [title, ...rest] = text.split("\n");
  const html = page(title, `<h1>${escape(title)}</h1><pre>${escape(rest.join("\n"))}</pre>`);
  fs.writeFileSync(path.join("dist", name.replace(/\.txt$/, ".html")), html);
}
const links = names.map((n) => `<li><a href="${n.replace(/\.txt$/, ".html")}">${escape(n)}</a></li>`);
fs.writeFileSync("dist/index.html", page("Documentation", `<ul>${links.join("")}</ul>`));
console.log(`built ${names.length} pages`);
