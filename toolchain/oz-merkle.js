#!/usr/bin/env node
// Builds an OpenZeppelin StandardMerkleTree (from npm's @openzeppelin/merkle-tree) over
// (address account, address token, uint256 cumulativeAmount) leaves read as JSON from stdin,
// and prints {"root", "proofs": [[...], ...]} in input order. The tests use it to check that
// protocol/merkle.py builds the very same tree as the reference implementation.
"use strict";
const fs = require("fs");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const leaves = JSON.parse(fs.readFileSync(0, "utf8"));
const tree = StandardMerkleTree.of(leaves, ["address", "address", "uint256"]);
const proofs = leaves.map((_, i) => tree.getProof(i));
fs.writeSync(1, JSON.stringify({ root: tree.root, proofs }));
