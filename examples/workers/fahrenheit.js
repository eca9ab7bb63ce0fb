#!/usr/bin/env node
// A Node.js worker for edged's `command` binding (see README.md beside it).
//
// stdin: the task input as one JSON object, e.g. {"celsius": -12.5, "limit": -15}
// stdout: the task output as one JSON object
// stderr: each line becomes a task log line
// exit: 0 COMPLETED, 1 FAILED (retried per the TaskDef), 2 FAILED_WITH_TERMINAL_ERROR
"use strict";

const chunks = [];
process.stdin.on("data", (chunk) => chunks.push(chunk));
process.stdin.on("end", () => {
  let input;
  try {
    input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (err) {
    console.error(`input is not JSON: ${err.message}`);
    process.exit(2);
  }
  const env = process.env;
  console.error(`fahrenheit: task ${env.EDGED_TASK_ID} attempt ${env.EDGED_ATTEMPT}`);
  if (typeof input.celsius !== "number") {
    console.error(`celsius must be a number, got ${JSON.stringify(input.celsius)}`);
    process.exit(2);
  }
  const fahrenheit = Math.round((input.celsius * 9) / 5 * 10 + 320) / 10;
  const limit = typeof input.limit === "number" ? input.limit : -15;
  const out = { fahrenheit, alarm: input.celsius > limit, worker: "node " + process.version };
  process.stdout.write(JSON.stringify(out) + "\n");
});
