// The TypeScript declarations (jobcast.d.ts, react.d.ts, vue.d.ts), checked three ways with the
// pinned compiler: the examples compile; the mistakes in examples/misuse fail, each where and
// how its comment says; and the declarations agree with schemas/server-message.json and with
// what the modules really export (a file of type-level assertions generated from both).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import * as jobcast from "../jobcast.js";

const web = fileURLToPath(new URL("../", import.meta.url));
const repo = fileURLToPath(new URL("../../", import.meta.url));
const tsc = join(web, "node_modules", ".bin", "tsc");

/** Runs the compiler; resolves with its exit code and output (never rejects on errors). */
function compile(project) {
  return new Promise((resolve, reject) => {
    execFile(tsc, ["--noEmit", "--pretty", "false", "-p", project], { cwd: web }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(err);
      resolve({ code: err ? err.code : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** The `file(line,col): error TSnnnn` lines of the compiler's output, as "file:line TSnnnn". */
function diagnostics(output) {
  return [...output.matchAll(/^(\S+?)\((\d+),\d+\): error (TS\d+):/gm)].map(([, file, line, code]) => `${file}:${line} ${code}`);
}

test("the examples type-check against the declarations", async () => {
  const { code, output } = await compile("tsconfig.json");
  assert.equal(output.trim(), "", "no diagnostics");
  assert.equal(code, 0);
});

test("every marked misuse fails to compile with its error, and nothing else fails", async () => {
  const expected = [];
  for (const file of ["misuse.ts", "misuse-react.tsx"]) {
    const lines = (await readFile(join(web, "examples", "misuse", file), "utf8")).split("\n");
    lines.forEach((line, i) => {
      const marked = /\/\/ error (TS\d+)/.exec(line);
      if (marked) expected.push(`examples/misuse/${file}:${i + 1} ${marked[1]}`);
    });
  }
  assert.ok(expected.length >= 20, `the misuse files mark ${expected.length} errors`);
  const { code, output } = await compile("examples/misuse/tsconfig.json");
  assert.notEqual(code, 0, "the misuse must not compile");
  assert.deepEqual(diagnostics(output).sort(), expected.sort(), output);
});

// ---------------------------------------------------------------------------------------------
// The declarations against the schema and the modules

const schema = JSON.parse(await readFile(join(repo, "schemas", "server-message.json"), "utf8"));

function resolve(node) {
  while (node && node.$ref) node = schema.$defs[node.$ref.replace("#/$defs/", "")];
  return node;
}

function nullable(node) {
  const types = [node.type].flat();
  if (types.includes("null")) return true;
  return (node.anyOf || []).some((branch) => branch.type === "null");
}

/** The schema of a property without its null branch, resolved. */
function nonNull(node) {
  const branches = (node.anyOf || []).filter((branch) => branch.type !== "null");
  return resolve(branches.length === 1 ? branches[0] : node);
}

/** The frames the schema allows, by `type`: their properties and required ones. */
function schemaFrames() {
  const frames = new Map();
  const add = (type, all, required) => {
    // A write-only property is the publisher's (a hub envelope's own timestamp), not the frame's.
    const properties = Object.fromEntries(Object.entries(all).filter(([, prop]) => !prop.writeOnly));
    frames.set(type, {
      properties: { ...schema.properties, ...properties },
      required: new Set([...schema.required, ...required]),
    });
  };
  for (const branch of schema.anyOf) {
    const target = resolve(branch);
    if (target.oneOf) {
      // The user messages: each its own `type`.
      for (const message of target.oneOf) {
        // A shape this reader does not know is a change of the contract: jobcast.d.ts (and
        // this reader) must learn it.
        assert.ok(message.properties?.type?.const, `a user message of an unknown shape: ${JSON.stringify(message).slice(0, 300)}`);
        const type = message.properties.type.const;
        const forms = message.$ref ? resolve(message).anyOf : null;
        if (!forms) {
          add(type, message.properties, message.required);
          continue;
        }
        // A message with two forms (flat, or in the hub's envelope): each checked on its own.
        assert.equal(forms.length, 2, `${type}: two forms`);
        for (const form of forms) {
          const shape = resolve(form);
          const name = shape.properties.payload ? `${type}#payload` : `${type}#flat`;
          add(name, { ...shape.properties, ...message.properties }, [...(shape.required || []), ...message.required]);
        }
      }
    } else {
      assert.ok(branch.properties?.type?.const && target.properties, `a frame of an unknown shape: ${JSON.stringify(branch).slice(0, 300)}`);
      add(branch.properties.type.const, { ...target.properties, ...branch.properties }, [...(target.required || []), ...branch.required]);
    }
  }
  return frames;
}

const USER_MESSAGES = ["notification", "alert", "project_progress", "project_completed", "update"];

/** A frame of `type`, or one form of it (`type#flat`, `type#payload`). */
function frameExpr(name) {
  const [type, form] = name.split("#");
  const frame = `Frame<${JSON.stringify(type)}>`;
  if (form === "payload") return `Extract<${frame}, { payload: unknown }>`;
  if (form === "flat") return `Exclude<${frame}, { payload: unknown }>`;
  return frame;
}

/**
 * Type-level assertions that the object type `expr` has exactly the schema's properties: the
 * required ones required, null where null is allowed (and only there), each of its type.
 */
function objectAssertions(expr, properties, required, out) {
  const keys = Object.keys(properties);
  out.push(`type _${out.length} = Expect<Equal<keyof ${expr}, ${union(keys)}>>;`);
  out.push(`type _${out.length} = Expect<Equal<RequiredKeys<${expr}>, ${union([...required].filter((k) => k in properties))}>>;`);
  for (const key of keys) {
    const prop = properties[key];
    const member = `${expr}[${JSON.stringify(key)}]`;
    out.push(`type _${out.length} = Expect<Equal<AcceptsNull<${member}>, ${nullable(prop) || isAnyJson(prop)}>>;`);
    const target = nonNull(prop);
    let type = null;
    if (isAnyJson(prop)) type = "Json";
    else if (target.const !== undefined) type = JSON.stringify(target.const);
    else if (target.oneOf && target.oneOf.every((b) => b.const !== undefined)) type = union(target.oneOf.map((b) => b.const));
    else if (target.anyOf) type = "string | number"; // a hub timestamp: text or epoch ms
    else if (target.properties) objectAssertions(`NonNullable<${member}>`, target.properties, new Set(target.required), out);
    else type = { string: "string", integer: "number", number: "number", boolean: "boolean" }[[target.type].flat()[0]];
    // Any JSON includes null: compare it whole.
    const without = type === "Json" ? "undefined" : "null | undefined";
    if (type) out.push(`type _${out.length} = Expect<Equal<Exclude<${member}, ${without}>, ${type}>>;`);
  }
}

function isAnyJson(prop) {
  return !prop.type && !prop.$ref && !prop.anyOf && !prop.oneOf && prop.const === undefined;
}

function union(values) {
  return values.length ? values.map((v) => JSON.stringify(v)).join(" | ") : "never";
}

/** The public API that jobcast.d.ts declares for JobcastClient (the rest is internal). */
const CLIENT_API = ["url", "options", "on", "connect", "close", "isOpen", "lastSeq", "subscribe", "unsubscribe", "cancel", "status"];

async function generatedAssertions({ dropFrameType } = {}) {
  const frames = schemaFrames();
  const out = [];
  const frameTypes = [...new Set([...frames.keys()].map((name) => name.split("#")[0]))].filter((type) => type !== dropFrameType);
  out.push(`type _${out.length} = Expect<Equal<ServerFrame["type"], ${union(frameTypes)}>>;`);
  for (const [name, { properties, required }] of frames) {
    const type = name.split("#")[0];
    // `message_id` is the user messages' (the schema puts it on every frame's envelope).
    const own = Object.fromEntries(Object.entries(properties).filter(([key]) => key !== "message_id" || USER_MESSAGES.includes(type)));
    objectAssertions(frameExpr(name), own, required, out);
  }
  const kinds = JSON.stringify(jobcast.KINDS);
  out.push(`type _${out.length} = Expect<Equal<typeof KINDS, readonly ${kinds}>>;`);
  out.push(`type _${out.length} = Expect<Equal<Kind, ${union(jobcast.KINDS)}>>;`);
  const modules = {
    jobcast: Object.keys(jobcast),
    react: Object.keys(await import("../react.js")),
    vue: Object.keys(await import("../vue.js")),
  };
  for (const [name, exports] of Object.entries(modules)) {
    out.push(`type _${out.length} = Expect<Equal<keyof typeof ${name}, ${union(exports)}>>;`);
  }
  out.push(`type _${out.length} = Expect<Equal<keyof JobcastClient, ${union(CLIENT_API)}>>;`);
  const at = (file) => JSON.stringify(join(web, file));
  return [
    `import type { Json, JobcastClient, Kind, ServerFrame } from ${at("jobcast.js")};`,
    `import { KINDS } from ${at("jobcast.js")};`,
    `import type * as jobcast from ${at("jobcast.js")};`,
    `import type * as react from ${at("react.js")};`,
    `import type * as vue from ${at("vue.js")};`,
    "type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;",
    "type Expect<T extends true> = T;",
    "type Frame<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>;",
    "type RequiredKeys<O> = { [K in keyof O]-?: {} extends Pick<O, K> ? never : K }[keyof O];",
    "type AcceptsNull<T> = null extends T ? true : false;",
    ...out,
    "",
  ].join("\n");
}

async function compileGenerated(source) {
  const dir = await mkdtemp(join(tmpdir(), "jobcast-types-"));
  try {
    await writeFile(join(dir, "generated.ts"), source);
    await writeFile(
      join(dir, "tsconfig.json"),
      JSON.stringify({ extends: join(web, "tsconfig.json"), compilerOptions: { noUnusedLocals: false }, include: ["generated.ts"] }),
    );
    return await compile(join(dir, "tsconfig.json"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("the declarations agree with the server-message schema and the modules' exports", async () => {
  for (const type of ["progress_update", "job_status", "error", "notification", "project_progress"]) {
    assert.ok(schemaFrames().has(type), `the schema reader finds ${type}`);
  }
  const source = await generatedAssertions();
  assert.ok(source.split("\n").length > 150, "a check per frame and property");
  const { code, output } = await compileGenerated(source);
  const lines = source.split("\n");
  const failing = [...output.matchAll(/generated\.ts\((\d+),/g)].map(([, line]) => lines[line - 1]);
  assert.equal(output.trim(), "", `the declarations disagree:\n${failing.join("\n")}`);
  assert.equal(code, 0);

  // The same assertions must be able to fail: a frame type the declarations have too many.
  const broken = await compileGenerated(await generatedAssertions({ dropFrameType: "replay_paused" }));
  assert.notEqual(broken.code, 0);
  assert.match(broken.output, /error TS2344/);
});
