// GitHub's expression engine (@actions/expressions) as a line-by-line service, for the
// workflow runner of the tests (tests/workflow_runner/).
//
//   node --import ./register.mjs evaluate.mjs
//
// Reads one JSON request per line on stdin and writes one JSON reply per line on stdout:
//
//   {"expression": "steps.run.outputs.verdict == 'pass'", "contexts": {...}, "status": "success"}
//   -> {"value": <the result as plain JSON>, "truthy": true | false, "text": "<as a string>"}
//   -> {"error": "<the engine's message>"}
//
// The expression comes without `${{ }}`. `contexts` are the named contexts (github, env,
// inputs, steps, needs, ...). The status functions are the runner's, not the engine's:
// success(), failure(), cancelled() and always() answer from `status` ("success",
// "failure" or "cancelled": the state of the job, or of the needed jobs). `text` is the
// value as GitHub writes an expression into a string.

import readline from "node:readline";

import { data, Evaluator, Lexer, Parser } from "@actions/expressions";
import { truthy } from "@actions/expressions/result";

function statusFunctions(status) {
  const answer = (name, value) => ({
    name,
    minArgs: 0,
    maxArgs: 0,
    call: () => new data.BooleanData(value),
  });
  return [
    answer("success", status === "success"),
    answer("failure", status === "failure"),
    answer("cancelled", status === "cancelled"),
    answer("always", true),
  ];
}

function evaluate({ expression, contexts, status }) {
  const functions = statusFunctions(status ?? "success");
  const tree = new Parser(
    new Lexer(expression).lex().tokens,
    Object.keys(contexts),
    functions,
  ).parse();
  const values = JSON.parse(JSON.stringify(contexts), data.reviver);
  const result = new Evaluator(
    tree,
    values,
    new Map(functions.map((f) => [f.name, f])),
  ).evaluate();
  const text = result.primitive ? result.coerceString() : JSON.stringify(result, data.replacer, 2);
  return { value: JSON.parse(JSON.stringify(result, data.replacer) ?? "null"), truthy: truthy(result), text };
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let reply;
  try {
    reply = evaluate(JSON.parse(line));
  } catch (error) {
    reply = { error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
