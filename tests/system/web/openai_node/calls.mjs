// The official OpenAI Node SDK, used as its README shows, against a tingxie web tier.
// node calls.mjs <base_url> <api_key> <audio file> <not-media file>: one JSON line of what each call got.
import fs from 'node:fs';
import OpenAI, { toFile } from 'openai';

const [baseURL, apiKey, audio, notMedia] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 300_000 });

async function attempt(call) {
  try {
    return { ok: await call() };
  } catch (error) {
    return { error: { status: error.status ?? null, code: error.code ?? null, param: error.param ?? null,
                      name: error.constructor.name, message: String(error.message) } };
  }
}

const results = {};
results.read_stream = await attempt(() => client.audio.transcriptions.create({
  file: fs.createReadStream(audio), model: 'gpt-4o-transcribe' }));
results.to_file = await attempt(async () => client.audio.transcriptions.create({
  file: await toFile(fs.readFileSync(audio), 'speech.flac'), model: 'whisper-1', response_format: 'verbose_json',
  timestamp_granularities: ['word'] }));
results.stream = await attempt(async () => {
  const events = [];
  const stream = await client.audio.transcriptions.create({
    file: fs.createReadStream(audio), model: 'gpt-4o-mini-transcribe', stream: true });
  for await (const event of stream) events.push(event);
  return events;
});
results.translation = await attempt(() => client.audio.translations.create({
  file: fs.createReadStream(audio), model: 'offline' }));
results.not_media = await attempt(() => client.audio.transcriptions.create({
  file: fs.createReadStream(notMedia), model: 'gpt-4o-transcribe' }));
results.models = await attempt(async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  return ids;
});
console.log(JSON.stringify(results));
