// asyncapi.yaml against the AsyncAPI 3.0 specification, with the official parser: the
// document's structure, and its $refs into schemas/ resolved from disk.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Parser, fromFile } from "@asyncapi/parser";

const path = fileURLToPath(new URL("../../asyncapi.yaml", import.meta.url));

test("asyncapi.yaml is a valid AsyncAPI 3.0 document", async () => {
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path).parse();
  const errors = diagnostics.filter((d) => d.severity === 0);
  assert.deepEqual(errors.map((d) => `${d.path.join(".")}: ${d.message}`), []);
  assert.ok(document, "parsed");
  assert.equal(document.version(), "3.0.0");
  assert.deepEqual(document.channels().all().map((c) => c.id()).sort(), ["connection", "pipelineEvents"]);
  const client = document.components().messages().get("clientMessage");
  // The schema came from schemas/client-message.json, resolved.
  assert.ok(JSON.stringify(client.payload().json()).includes("subscribe"));
  assert.ok((await readFile(path, "utf8")).includes("./schemas/client-message.json"));
});
