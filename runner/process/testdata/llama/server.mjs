// An OpenAI-style HTTP server over node-llama-cpp (llama.cpp), for
// runner/process's real-engine test: node server.mjs MODEL.gguf PORT [NAME].
// It serves GET /v1/models, POST /v1/completions and /v1/chat/completions,
// streamed (SSE, one chunk per generated token) or not, on 127.0.0.1, with
// greedy sampling unless a temperature is given, max_tokens and ignore_eos.
import http from "node:http";
import { getLlama } from "node-llama-cpp";

const [modelPath, port, name = "tiny-llama"] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath });
const ctxSize = 256;
const context = await model.createContext({ contextSize: ctxSize, sequences: 2, threads: 2 });
const free = [context.getSequence(), context.getSequence()];
const waiting = [];
const acquire = () => (free.length ? Promise.resolve(free.pop()) : new Promise((r) => waiting.push(r)));
const release = (s) => (waiting.length ? waiting.shift()(s) : free.push(s));

// generate runs one prompt on a free sequence, calling onText with each
// piece of text, and returns the token counts and the finish reason.
async function generate(prompt, opts, onText, isGone) {
  const seq = await acquire();
  try {
    await seq.clearHistory();
    const input = model.tokenize(prompt);
    if (model.tokens.bos != null) input.unshift(model.tokens.bos);
    const room = ctxSize - input.length;
    if (room <= 0) throw Object.assign(new Error(`prompt of ${input.length} tokens does not fit ${ctxSize}`), { status: 400 });
    const max = Math.min(opts.max_completion_tokens ?? opts.max_tokens ?? 16, room);
    const out = [];
    let shown = 0, finish = "length";
    if (max > 0) {
      for await (const tok of seq.evaluate(input, { temperature: opts.temperature ?? 0, seed: opts.seed })) {
        if (isGone()) break;
        if (model.isEogToken(tok) && !opts.ignore_eos) { finish = "stop"; break; }
        out.push(tok);
        const text = model.detokenize(out);
        if (!text.endsWith("\uFFFD") && text.length > shown) { onText(text.slice(shown)); shown = text.length; }
        if (out.length >= max) break;
      }
    }
    const rest = model.detokenize(out).slice(shown);
    if (rest) onText(rest);
    return { prompt_tokens: input.length, completion_tokens: out.length, finish };
  } finally {
    release(seq);
  }
}

async function complete(req, res, body, chat) {
  const id = `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const base = { id, object: chat ? "chat.completion.chunk" : "text_completion", created: Math.floor(Date.now() / 1000), model: name };
  const prompts = chat ? [body.messages.map((m) => `${m.role}: ${m.content}`).join("\n") + "\nassistant:"]
    : [body.prompt ?? ""].flat();
  let gone = false;
  res.on("close", () => { gone = !res.writableFinished; });
  if (!body.stream) {
    const choices = [], usage = { prompt_tokens: 0, completion_tokens: 0 };
    for (const [index, p] of prompts.entries()) {
      let text = "";
      const u = await generate(p, body, (t) => { text += t; }, () => gone);
      usage.prompt_tokens += u.prompt_tokens;
      usage.completion_tokens += u.completion_tokens;
      choices.push(chat ? { index, message: { role: "assistant", content: text }, finish_reason: u.finish }
        : { index, text, finish_reason: u.finish });
    }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    return send(res, 200, { ...base, object: chat ? "chat.completion" : "text_completion", choices, usage });
  }
  if (prompts.length !== 1) return send(res, 400, { error: { message: "stream takes one prompt", type: "invalid_request_error" } });
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const event = (choices, extra) => res.write(`data: ${JSON.stringify({ ...base, choices, ...extra })}\n\n`);
  const piece = (text, finish_reason = null) => (chat ? { index: 0, delta: text == null ? {} : { content: text }, finish_reason }
    : { index: 0, text: text ?? "", finish_reason });
  if (chat) event([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
  const u = await generate(prompts[0], body, (t) => event([piece(t)]), () => gone);
  event([piece(null, u.finish)]);
  if (body.stream_options?.include_usage) {
    const { prompt_tokens, completion_tokens } = u;
    event([], { usage: { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens } });
  }
  res.end("data: [DONE]\n\n");
}

function send(res, status, obj) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(obj));
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === "GET" && req.url === "/v1/models") {
      return send(res, 200, { object: "list", data: [{ id: name, object: "model", created: 0, owned_by: "airlock-test" }] });
    }
    const chat = req.url === "/v1/chat/completions";
    if (req.method !== "POST" || (!chat && req.url !== "/v1/completions")) {
      return send(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: "not_found" } });
    }
    let raw = "";
    for await (const chunk of req) raw += chunk;
    await complete(req, res, JSON.parse(raw), chat);
  } catch (err) {
    if (res.headersSent) return res.destroy(err);
    send(res, err.status ?? (err instanceof SyntaxError ? 400 : 500), { error: { message: String(err.message ?? err), type: "server_error" } });
  }
});
server.listen(Number(port), "127.0.0.1", () => console.log(`serving ${modelPath} as ${name} on 127.0.0.1:${port}`));
