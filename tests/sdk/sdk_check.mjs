// sdk_check.mjs ROUTER_URL API_KEY NARROW_KEY - drives vapora-llm-router
// with the official OpenAI and Anthropic SDKs, unchanged, against every
// provider kind (X-Vapora-Provider), whole and streamed, plus their error
// classes (NARROW_KEY may spend from role tester only).
// Prints "ok NAME" or "FAIL NAME: why" per check; exits 1 on any failure.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [base, key, narrowKey] = process.argv.slice(2);
const providers = { oai: "gpt-a", claude: "claude-x", gem: "gem-x", local: "llama" };
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`);
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

const openai = (provider) =>
  new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0,
               defaultHeaders: provider ? { "X-Vapora-Provider": provider } : {} });
const anthropic = (provider) =>
  new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0,
                  defaultHeaders: provider ? { "X-Vapora-Provider": provider } : {} });
const messages = [{ role: "user", content: "hi" }];

for (const [p, model] of Object.entries(providers)) {
  await check(`openai sdk: ${p} whole`, async () => {
    const { data, response } = await openai(p).chat.completions
      .create({ model, messages }).withResponse();
    expect(data.choices[0].message.content === `Hello from ${model}.`, `text ${JSON.stringify(data.choices[0])}`);
    expect(data.usage.prompt_tokens === 10 && data.usage.completion_tokens === 20, `usage ${JSON.stringify(data.usage)}`);
    expect(response.headers.get("x-vapora-provider") === p, "X-Vapora-Provider");
  });
  await check(`openai sdk: ${p} stream with usage`, async () => {
    const stream = await openai(p).chat.completions.create({
      model, messages, stream: true, stream_options: { include_usage: true } });
    let text = "", usage = null, finish = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.delta.content || "";
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    expect(text === `Hello from ${model}.`, `text ${JSON.stringify(text)}`);
    expect(finish === "stop", `finish ${finish}`);
    expect(usage && usage.completion_tokens === 20, `usage ${JSON.stringify(usage)}`);
  });
  await check(`anthropic sdk: ${p} whole`, async () => {
    const msg = await anthropic(p).messages.create({ model, max_tokens: 100, messages });
    expect(msg.content[0].type === "text" && msg.content[0].text === `Hello from ${model}.`, `content ${JSON.stringify(msg.content)}`);
    expect(msg.stop_reason === "end_turn", `stop_reason ${msg.stop_reason}`);
    expect(msg.usage.input_tokens === 10 && msg.usage.output_tokens === 20, `usage ${JSON.stringify(msg.usage)}`);
  });
  await check(`anthropic sdk: ${p} stream`, async () => {
    const stream = anthropic(p).messages.stream({ model, max_tokens: 100, messages });
    let text = "";
    stream.on("text", (t) => { text += t; });
    const msg = await stream.finalMessage();
    expect(text === `Hello from ${model}.`, `text ${JSON.stringify(text)}`);
    expect(msg.usage.output_tokens === 20, `usage ${JSON.stringify(msg.usage)}`);
  });
}

await check("openai sdk: models.list", async () => {
  const ids = [];
  for await (const m of openai().models.list()) ids.push(m.id);
  for (const m of Object.values(providers)) expect(ids.includes(m), `missing ${m} in ${ids}`);
});
await check("openai sdk: unknown model is NotFoundError", async () => {
  try {
    await openai().chat.completions.create({ model: "no-such-model", messages });
  } catch (e) {
    expect(e instanceof OpenAI.NotFoundError, `got ${e.constructor.name}`);
    expect(/no-such-model/.test(e.message), `message ${e.message}`);
    return;
  }
  throw new Error("no error");
});
await check("openai sdk: wrong key is AuthenticationError", async () => {
  const c = new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong", maxRetries: 0 });
  try {
    await c.chat.completions.create({ model: "gpt-a", messages });
  } catch (e) {
    expect(e instanceof OpenAI.AuthenticationError, `got ${e.constructor.name}`);
    return;
  }
  throw new Error("no error");
});
await check("anthropic sdk: missing max_tokens is BadRequestError", async () => {
  try {
    await anthropic().messages.create({ model: "claude-x", messages });
  } catch (e) {
    expect(e instanceof Anthropic.BadRequestError, `got ${e.constructor.name}`);
    expect(e.error && e.error.error && e.error.error.type === "invalid_request_error", `body ${JSON.stringify(e.error)}`);
    return;
  }
  throw new Error("no error");
});
await check("anthropic sdk: wrong key is AuthenticationError", async () => {
  const c = new Anthropic({ baseURL: base, apiKey: "wrong", maxRetries: 0 });
  try {
    await c.messages.create({ model: "claude-x", max_tokens: 10, messages });
  } catch (e) {
    expect(e instanceof Anthropic.AuthenticationError, `got ${e.constructor.name}`);
    return;
  }
  throw new Error("no error");
});
await check("openai sdk: a role the key may not spend from is PermissionDeniedError", async () => {
  const c = new OpenAI({ baseURL: `${base}/v1`, apiKey: narrowKey, maxRetries: 0,
                         defaultHeaders: { "X-Vapora-Role": "architect" } });
  try {
    await c.chat.completions.create({ model: "gpt-a", messages });
  } catch (e) {
    expect(e instanceof OpenAI.PermissionDeniedError, `got ${e.constructor.name}`);
    expect(e.code === "role_not_allowed", `code ${e.code}`);
    return;
  }
  throw new Error("no error");
});
await check("anthropic sdk: a role the key may not spend from is PermissionDeniedError", async () => {
  const c = new Anthropic({ baseURL: base, apiKey: narrowKey, maxRetries: 0,
                            defaultHeaders: { "X-Vapora-Role": "architect" } });
  try {
    await c.messages.create({ model: "claude-x", max_tokens: 10, messages });
  } catch (e) {
    expect(e instanceof Anthropic.PermissionDeniedError, `got ${e.constructor.name}`);
    return;
  }
  throw new Error("no error");
});
await check("anthropic sdk: the narrow key spends from its own role", async () => {
  const c = new Anthropic({ baseURL: base, apiKey: narrowKey, maxRetries: 0 });
  const msg = await c.messages.create({ model: "claude-x", max_tokens: 10, messages });
  expect(msg.content[0].text === "Hello from claude-x.", `content ${JSON.stringify(msg.content)}`);
});
process.exit(failed ? 1 : 0);
