// The Figure 4 page: pick a test digit, drag one slider per dimension of its predicted capsule,
// and watch the decoder (decoder.mjs) redraw the digit, all in the browser.
import { decode, loadDecoder, readFloat16 } from "./decoder.mjs";

const STEP = 0.01, RANGE = 0.25;             // the paper's perturbations: -0.25 .. +0.25
const here = new URL(".", import.meta.url);

function bytesOf(base64) {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

// Draw 784 intensities in [0, 1] (or uint8 pixels) onto a 28 x 28 canvas, in gray.
function draw(canvas, values, scale = 1) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let k = 0; k < 784; k++) {
    const gray = Math.round(Math.min(Math.max(values[k] * scale, 0), 255));
    image.data.set([gray, gray, gray, 255], 4 * k);
  }
  context.putImageData(image, 0, 0);
}

async function fetchOk(name) {
  const response = await fetch(new URL(name, here));
  if (!response.ok) throw new Error(`could not load ${name}: HTTP ${response.status}`);
  return response;
}

async function start(root) {
  const [manifest, weights, data] = await Promise.all([
    fetchOk("decoder.json").then((r) => r.json()),
    fetchOk("decoder.bin").then((r) => r.arrayBuffer()),
    fetchOk("digits.json").then((r) => r.json()),
  ]);
  const decoder = loadDecoder(manifest, weights);
  const digits = data.digits.map((d) => {
    const capsules = bytesOf(d.capsules);
    return { ...d, pixels: bytesOf(d.pixels), capsules: readFloat16(capsules.buffer, 0, capsules.length / 2) };
  });
  const dims = data.capsule_shape[1];

  const input = element("canvas", { width: 28, height: 28, id: "fig4-input", class: "fig4-big" });
  const output = element("canvas", { width: 28, height: 28, id: "fig4-reconstruction", class: "fig4-big" });
  const caption = element("p", { id: "fig4-caption" });
  const timing = element("p", { id: "fig4-timing", class: "fig4-note" });
  const reset = element("button", { id: "fig4-reset", type: "button" }, ["reset"]);
  const sliders = [], readouts = [];
  const sliderGrid = element("div", { class: "fig4-sliders" });
  for (let d = 0; d < dims; d++) {
    const slider = element("input", { type: "range", min: -RANGE, max: RANGE, step: STEP, value: 0,
                                      id: `fig4-dim-${d}`, "aria-label": `dimension ${d}` });
    const readout = element("output", { for: `fig4-dim-${d}` }, ["+0.00"]);
    sliders.push(slider); readouts.push(readout);
    sliderGrid.append(element("label", {}, [`dim ${d}`, slider, readout]));
  }
  const thumbs = element("div", { class: "fig4-thumbs", role: "listbox", "aria-label": "test digits" });
  digits.forEach((digit, index) => {
    const canvas = element("canvas", { width: 28, height: 28 });
    draw(canvas, digit.pixels);
    const button = element("button", { type: "button", class: "fig4-thumb", "data-index": index,
                                       title: `test digit ${index}: label ${digit.label}` }, [canvas]);
    button.addEventListener("click", () => select(index));
    thumbs.append(button);
  });
  root.replaceChildren(
    element("div", { class: "fig4-pictures" }, [
      element("figure", {}, [input, element("figcaption", {}, ["input"])]),
      element("figure", {}, [output, element("figcaption", {}, ["reconstruction"])]),
      element("div", {}, [caption, reset, timing]),
    ]),
    sliderGrid,
    element("p", { class: "fig4-note" }, [`Pick one of the first ${digits.length} test digits:`]),
    thumbs,
  );

  const state = { index: 0, times: [] };
  function offsets() { return sliders.map((s) => Number(s.value)); }
  function redraw() {
    const digit = digits[state.index];
    const capsules = Float32Array.from(digit.capsules);
    offsets().forEach((offset, d) => { capsules[digit.prediction * dims + d] += offset; });
    const started = performance.now();
    const pixels = decode(decoder, capsules, digit.prediction);
    state.times.push(performance.now() - started);
    draw(output, pixels, 255);
    sliders.forEach((s, d) => { readouts[d].textContent = (Number(s.value) >= 0 ? "+" : "") + Number(s.value).toFixed(2); });
    const recent = state.times.slice(-20).sort((a, b) => a - b);
    timing.textContent = `decoded in ${recent[Math.floor(recent.length / 2)].toFixed(1)} ms (median of the last ${recent.length})`;
  }
  function select(index) {
    state.index = index;
    const digit = digits[index];
    draw(input, digit.pixels);
    const capsule = digit.capsules.slice(digit.prediction * dims, (digit.prediction + 1) * dims);
    const length = Math.hypot(...capsule);
    caption.textContent = `test digit ${index}: label ${digit.label}, predicted ${digit.prediction} ` +
                          `(capsule length ${length.toFixed(3)}); the sliders move capsule ${digit.prediction}`;
    thumbs.querySelectorAll(".fig4-thumb").forEach((b) => b.classList.toggle("selected", Number(b.dataset.index) === index));
    resetSliders();
  }
  function resetSliders() {
    sliders.forEach((s) => { s.value = 0; });
    redraw();
  }
  sliders.forEach((s) => s.addEventListener("input", redraw));
  reset.addEventListener("click", resetSliders);
  select(0);
  // For readers who script the page, and for the browser test.
  window.figure4 = { state, digits, offsets, select, ready: true };
}

const root = document.getElementById("figure4");
start(root).catch((error) => figure4CannotStart(error.message));      // defined by the page (figure4.md)
