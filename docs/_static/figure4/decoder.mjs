// The CapsNet decoder of the paper's Fig. 2 in plain JavaScript, for the Figure 4 page and for
// the test that compares it with PyTorch's (tests/test_site.py). No dependencies.
//
//   masked digit capsules (10 x 16 = 160) -> 512 ReLU -> 1024 ReLU -> 784 sigmoid = a 28 x 28 image
//
// Weights arrive as float16 (decoder.bin, laid out as decoder.json says) and are widened once to
// float32; the arithmetic is float32-accurate like PyTorch's on the CPU.

export function float16ToFloat32(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);          // subnormal
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

export function readFloat16(buffer, byteOffset, count) {
  const view = new DataView(buffer, byteOffset, count * 2);
  const out = new Float32Array(count);
  for (let k = 0; k < count; k++) out[k] = float16ToFloat32(view.getUint16(2 * k, true));
  return out;
}

// manifest: decoder.json; buffer: decoder.bin as an ArrayBuffer.
export function loadDecoder(manifest, buffer) {
  if (buffer.byteLength !== manifest.bytes) {
    throw new Error(`decoder.bin holds ${buffer.byteLength} bytes, decoder.json expects ${manifest.bytes}`);
  }
  return manifest.layers.map((layer) => ({
    in: layer.in, out: layer.out, activation: layer.activation,
    weight: readFloat16(buffer, layer.weight_offset, layer.in * layer.out),   // (out, in), row-major
    bias: readFloat16(buffer, layer.bias_offset, layer.out),
  }));
}

const ACTIVATIONS = {
  relu: (x) => (x > 0 ? x : 0),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
};

// y = activation(W x + b), with x nonzero only in `x.length` inputs starting at `first`.
function dense(layer, x, first) {
  const y = new Float32Array(layer.out);
  const f = ACTIVATIONS[layer.activation];
  for (let o = 0; o < layer.out; o++) {
    const row = o * layer.in + first;
    let sum = layer.bias[o];
    for (let i = 0; i < x.length; i++) sum += layer.weight[row + i] * x[i];
    y[o] = f(sum);
  }
  return y;
}

// capsules: 160 numbers (10 capsules of 16); label: the capsule to keep (the decoder's mask).
// Returns the 784 pixel intensities in [0, 1], row by row.
export function decode(decoder, capsules, label) {
  const size = capsules.length / 10;
  // The mask zeroes 9 of the 10 capsules, so the first layer only needs the 16 columns of `label`.
  let x = dense(decoder[0], capsules.slice(label * size, (label + 1) * size), label * size);
  for (const layer of decoder.slice(1)) x = dense(layer, x, 0);
  return x;
}
