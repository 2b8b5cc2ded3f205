#!/usr/bin/env node
// negawatt's stand-in for a native `solc` binary, used when no native compiler can be installed.
//
// It answers the two command forms py-solc-x and ape-solidity use:
//   solc --version
//   solc --standard-json [--base-path DIR] [--include-path DIR ...] [--allow-paths ...]  < input.json
// and compiles with npm's `solc` package (solcjs, WebAssembly). Imports that are not in the
// standard-json sources are resolved from the base path and include paths, as native solc does.
"use strict";

const fs = require("fs");
const path = require("path");

// The project's node_modules is found relative to this file's install location, which the
// provisioning step records in NEGAWATT_SOLCJS (set when the shim is installed).
const SOLCJS = process.env.NEGAWATT_SOLCJS_OVERRIDE || "__NEGAWATT_SOLCJS__";
const solc = require(SOLCJS);

function writeAll(text) {
  // A synchronous write: process.stdout.write followed by exit was seen to cut output at 128 KiB.
  const buffer = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(1, buffer, offset, buffer.length - offset);
    } catch (error) {
      if (error.code !== "EAGAIN") throw error;
    }
  }
}

function parseArgs(argv) {
  const options = { version: false, standardJson: false, roots: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--version") options.version = true;
    else if (arg === "--standard-json") options.standardJson = true;
    else if (arg === "--base-path" || arg === "--include-path") options.roots.push(argv[++i]);
    else if (arg.startsWith("--base-path=") || arg.startsWith("--include-path=")) {
      options.roots.push(arg.slice(arg.indexOf("=") + 1));
    } else if (arg === "--allow-paths") i += 1;
    // Anything else (e.g. --allow-paths=...) has no meaning for solcjs and is ignored.
  }
  return options;
}

function importResolver(roots) {
  return (importPath) => {
    const candidates = [importPath, ...roots.map((root) => path.join(root, importPath))];
    for (const candidate of candidates) {
      try {
        if (fs.statSync(candidate).isFile()) return { contents: fs.readFileSync(candidate, "utf8") };
      } catch (_) {
        // not here; try the next root
      }
    }
    return { error: `File not found in base or include paths: ${importPath}` };
  };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  if (options.version) {
    writeAll(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!options.standardJson) {
    process.stderr.write("negawatt solc shim: only --version and --standard-json are supported\n");
    return 2;
  }
  const input = fs.readFileSync(0, "utf8");
  const output = solc.compile(input, { import: importResolver(options.roots) });
  writeAll(output);
  return 0;
}

process.exitCode = main();
