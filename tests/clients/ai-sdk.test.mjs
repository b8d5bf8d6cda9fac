// The Vercel AI SDK (ai 6 + @ai-sdk/openai 3) against imagemint's OpenAI dialect.
// For GPT image models the SDK sends no response_format and reads data[].b64_json.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createOpenAI } from "@ai-sdk/openai";
import { generateImage } from "ai";

import { png, pngSize, target } from "./png.mjs";

const openai = createOpenAI(target());

test("generateImage with gpt-image-2 and n=2 returns two images", async () => {
  const { images, warnings } = await generateImage({
    model: openai.image("gpt-image-2"),
    prompt: "a lighthouse on a cliff at dawn, watercolour",
    n: 2,
    size: "1024x1024",
    maxRetries: 0,
  });
  assert.equal(images.length, 2);
  for (const image of images) {
    assert.equal(image.mediaType, "image/png");
    const size = pngSize(image.uint8Array);
    assert.ok(size, "each image is a PNG");
    assert.equal(size[0], size[1], "1024x1024 was asked for: a square");
  }
  assert.notDeepEqual(images[0].uint8Array, images[1].uint8Array, "two distinct images");
  assert.deepEqual(warnings, []);
});

test("generateImage edits a reference image (prompt.images + text)", async () => {
  const reference = png(64, 64, (x, y) => [x * 4, y * 4, 128, 255]);
  const { images } = await generateImage({
    model: openai.image("gpt-image-2"),
    prompt: { images: [reference], text: "turn the gradient into a sunset sky" },
    maxRetries: 0,
  });
  assert.equal(images.length, 1);
  assert.ok(pngSize(images[0].uint8Array), "the edited image is a PNG");
});
