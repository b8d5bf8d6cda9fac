// The OpenAI Node SDK (openai 6) against imagemint's OpenAI dialect, with OpenAI's defaults:
// no response_format, so GPT image models answer data[].b64_json.
import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI, { toFile } from "openai";

import { png, pngSize, target } from "./png.mjs";

const client = new OpenAI({ ...target(), maxRetries: 0, timeout: 60_000 });

function decoded(item) {
  assert.equal(typeof item.b64_json, "string", "b64_json by default, as OpenAI answers");
  const bytes = Buffer.from(item.b64_json, "base64");
  const size = pngSize(bytes);
  assert.ok(size, "a PNG");
  return size;
}

test("images.generate with gpt-image-2 at 1536x864", async () => {
  const result = await client.images.generate({
    model: "gpt-image-2",
    prompt: "a wide mountain panorama at golden hour",
    size: "1536x864",
  });
  assert.equal(result.data.length, 1);
  const [width, height] = decoded(result.data[0]);
  assert.equal(Math.round((width / height) * 9), 16, `16:9 was asked for, got ${width}x${height}`);
});

test("images.edit with two images and a mask", async () => {
  const first = png(64, 64, (x, y) => [200, x * 4, y * 4, 255]);
  const second = png(64, 64, (x, y) => [x * 4, 200, y * 4, 255]);
  // Transparent where the edit goes (the left half), opaque elsewhere.
  const mask = png(64, 64, (x) => [0, 0, 0, x < 32 ? 0 : 255]);
  const result = await client.images.edit({
    model: "gpt-image-2",
    image: [
      await toFile(first, "first.png", { type: "image/png" }),
      await toFile(second, "second.png", { type: "image/png" }),
    ],
    mask: await toFile(mask, "mask.png", { type: "image/png" }),
    prompt: "put the two objects side by side on a wooden table",
  });
  assert.equal(result.data.length, 1);
  decoded(result.data[0]);
});
