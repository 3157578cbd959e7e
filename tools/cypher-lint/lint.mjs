// Checks Cypher statements with Neo4j's own parser and semantic analysis.
//
// Usage: node lint.mjs < statements.json
//
// stdin:  a JSON array of strings, one Cypher statement each (as sent to session.run).
// stdout: a JSON array of the same length and order; each item is the list of error
//         messages for that statement ("<message> (line L, column C)", 1-based); an
//         empty list means Neo4j 5 accepts the statement.
// exit:   0 when the input was read (whatever the findings), 2 when it was not a JSON
//         array of strings (the reason on stderr).
//
// What counts as an error: every diagnostic of severity Error from
// @neo4j-cypher/language-support's lintCypherQuery, run as CYPHER 5 (the default when the
// statement names no version): ANTLR syntax errors and the errors of Neo4j's own semantic
// analysis (undefined variables, removed syntax such as exists(n.prop) or
// CREATE CONSTRAINT ... ON ... ASSERT, unsupported shortestPath forms...). Also an error
// here: an empty statement, and a string holding more than one statement (the driver runs
// one statement per query). Not errors: warnings (deprecations such as id(), cartesian
// product notices). Parameters are declared from the statement itself, so `$x` is never
// "not defined"; no database schema is given, so unknown labels, functions and procedures
// are not reported.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

// The package's ESM build uses extensionless imports that Node cannot resolve: use its
// CommonJS build.
const require = createRequire(import.meta.url);
const { lintCypherQuery, parseParameters, parserWrapper } = require(
  '@neo4j-cypher/language-support',
);

const ERROR = 1; // vscode-languageserver-types DiagnosticSeverity.Error

function describe(diagnostic) {
  const { line, character } = diagnostic.range.start;
  return `${diagnostic.message} (line ${line + 1}, column ${character + 1})`;
}

function lintOne(statement) {
  if (statement.trim() === '') {
    return ['empty statement'];
  }
  const parsed = parserWrapper.parse(statement, false).statementsParsing;
  const cypher = parsed.filter(
    (s) => s.command.type === 'cypher' && s.command.statement.trim() !== '',
  );
  const messages = [];
  if (cypher.length > 1) {
    messages.push(
      `${cypher.length} statements in one string; the driver runs one statement per query`,
    );
  }
  const parameters = Object.fromEntries(
    parseParameters(statement, false).map((name) => [name, null]),
  );
  const diagnostics = lintCypherQuery(statement, { parameters }, false);
  for (const d of diagnostics) {
    if (d.severity === ERROR) messages.push(describe(d));
  }
  return messages;
}

function fail(message) {
  process.stderr.write(`cypher-lint: ${message}\n`);
  process.exit(2);
}

let statements;
try {
  statements = JSON.parse(readFileSync(0, 'utf8'));
} catch (e) {
  fail(`stdin is not JSON: ${e.message}`);
}
if (!Array.isArray(statements) || !statements.every((s) => typeof s === 'string')) {
  fail('stdin must be a JSON array of strings');
}
process.stdout.write(JSON.stringify(statements.map(lintOne)) + '\n');
