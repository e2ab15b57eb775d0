// Run the web page's decoder under Node: node tests/js/decode_cli.mjs FOLDER < cases.json
// FOLDER holds decoder.json and decoder.bin; stdin is {"cases": [{"capsules": [160 numbers], "label": k}]};
// stdout is a JSON list with the 784 decoded pixels of each case.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const folder = process.argv[2];
const { decode, loadDecoder } = await import(pathToFileURL(join(folder, "decoder.mjs")).href);
const manifest = JSON.parse(readFileSync(join(folder, "decoder.json"), "utf8"));
const bytes = readFileSync(join(folder, "decoder.bin"));
const decoder = loadDecoder(manifest, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
const { cases } = JSON.parse(readFileSync(0, "utf8"));
const started = performance.now();
const images = cases.map(({ capsules, label }) => Array.from(decode(decoder, Float32Array.from(capsules), label)));
const milliseconds = (performance.now() - started) / cases.length;
process.stdout.write(JSON.stringify({ images, milliseconds_per_decode: milliseconds }));
