// Parse workflows and action.yml files with GitHub's own parser; print the errors as JSON.
//
//   node --import ./register.mjs parse.mjs --root REPO FILE...
//   node --import ./register.mjs parse.mjs --eval < {"expression": ..., "contexts": [...]}
//
// FILE is a workflow (.github/workflows/*.yml) or an action definition (action.yml).
// Workflows are also converted, as GitHub does before a run, which checks jobs, needs,
// permissions, concurrency and expressions; a job that calls a local reusable workflow
// (`uses: ./.github/workflows/x.yml`) has that file read from REPO and its `with:` and
// `secrets:` checked against the callee's `on.workflow_call`.
//
// Prints {"files": [{"file": FILE, "kind": "workflow" | "action", "errors": [...]}]}
// and exits 0; exits 2 on bad arguments. Zero errors everywhere = valid.
//
// --eval evaluates one `if:` expression (without `${{ }}`) with GitHub's expression engine
// against each context object read from stdin (e.g. {"github": {...}, "needs": {...}}),
// and prints {"results": [true | false, ...]}: which events would run a job.

import { readFile } from "node:fs/promises";
import path from "node:path";

import { data, Evaluator, Lexer, Parser } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";
import { convertActionTemplate, parseAction } from "@actions/workflow-parser/actions/index";
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from "@actions/workflow-parser";
import { ErrorPolicy } from "@actions/workflow-parser/model/convert";

function usage(message) {
  process.stderr.write(`${message}\nusage: node --import ./register.mjs parse.mjs --root REPO FILE...\n`);
  process.exit(2);
}

function isAction(file) {
  return ["action.yml", "action.yaml"].includes(path.basename(file));
}

// Reads `./...` references from the repository; remote ones cannot be reached from here.
function localFiles(root) {
  return {
    async getFileContent(ref) {
      if ("repository" in ref) {
        throw new Error(`remote reusable workflow ${ref.owner}/${ref.repository} is not checked`);
      }
      return { name: ref.path, content: await readFile(path.join(root, ref.path), "utf8") };
    },
  };
}

function messages(context) {
  return context.errors.getErrors().map((error) => error.message);
}

async function check(root, file) {
  const content = await readFile(path.resolve(root, file), "utf8");
  const entry = { name: file, content };
  const trace = new NoOperationTraceWriter();
  if (isAction(file)) {
    const parsed = parseAction(entry, trace);
    if (parsed.value !== undefined) {
      convertActionTemplate(parsed.context, parsed.value, { errorPolicy: ErrorPolicy.TryConversion });
    }
    return { file, kind: "action", errors: messages(parsed.context) };
  }
  const parsed = parseWorkflow(entry, trace);
  if (parsed.value !== undefined) {
    await convertWorkflowTemplate(parsed.context, parsed.value, localFiles(root), {
      fetchReusableWorkflowDepth: 1,
      errorPolicy: ErrorPolicy.TryConversion,
    });
  }
  return { file, kind: "workflow", errors: messages(parsed.context) };
}

async function evaluate() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  const { expression, contexts } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const names = [...new Set(contexts.flatMap((context) => Object.keys(context)))];
  const tree = new Parser(new Lexer(expression).lex().tokens, names, []).parse();
  const results = contexts.map((context) => {
    const values = JSON.parse(JSON.stringify(context), data.reviver);
    return truthy(new Evaluator(tree, values).evaluate());
  });
  process.stdout.write(JSON.stringify({ results }) + "\n");
}

const args = process.argv.slice(2);
if (args[0] === "--eval") {
  await evaluate();
  process.exit(0);
}
const at = args.indexOf("--root");
if (at === -1 || at + 1 >= args.length) {
  usage("missing --root");
}
const root = args[at + 1];
const files = args.filter((_, index) => index !== at && index !== at + 1);
if (files.length === 0) {
  usage("no files given");
}
const results = [];
for (const file of files) {
  results.push(await check(root, file));
}
process.stdout.write(JSON.stringify({ files: results }, null, 2) + "\n");
