// Calls idgraph's rpcs as an independent client would: @grpc/grpc-js over a plain TCP
// channel, messages built from the project's .proto files by @grpc/proto-loader (no
// generated code, nothing of the Python stack).
//
// Usage: node call.mjs < job.json
//
// stdin: a JSON job
//   {
//     "target": "127.0.0.1:50051",
//     "protoDir": "/path/to/proto",      // every *.proto below it is loaded, with this
//                                        // directory as the include path
//     "calls": [
//       {"service": "idgraph.v1.ProfileService",   // full service name
//        "rpc": "Lookup",
//        "request": {"identifier": "email:a@example.com"},  // field names as in the
//                                                           // .proto (snake_case)
//        "key": "idg_..." | null,                 // sent as `authorization: Bearer <key>`
//        "deadlineMs": 10000}                     // optional, default 10000
//     ]
//   }
// stdout: a JSON array, one item per call, in order:
//   {"code": <grpc status number, 0 = OK>, "details": "<status message>",
//    "messages": <the response as JSON for a unary rpc (null on an error); the number of
//                 messages received for a server-streaming rpc>}
//   Responses are converted with longs and enums as strings, bytes as base64, unset fields
//   left out and oneofs naming the field set ("subject": "profile_id").
// exit:   0 when the job was read and every call was made (whatever their statuses);
//         2 when the job is not valid (unknown service or rpc, a request field the message
//         does not have, a client-streaming rpc), with the reason on stderr.
//
// The calls run one after another on one channel, so a job's side effects happen in the
// order it lists them.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const DEFAULT_DEADLINE_MS = 10_000;
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  oneofs: true,
};

class JobError extends Error {}

function protoFiles(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      found.push(...protoFiles(path));
    } else if (name.endsWith('.proto')) {
      found.push(path);
    }
  }
  return found;
}

function loadDefinitions(protoDir) {
  const files = protoFiles(protoDir).map((p) => relative(protoDir, p).split(sep).join('/'));
  if (files.length === 0) {
    throw new JobError(`no .proto file under ${protoDir}`);
  }
  return protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs: [protoDir] });
}

// What a field's type name refers to, resolved as protoc does: a type nested in the
// message using it, else a listed type from that message's scope outwards.
// {kind: "message", descriptor, name} or {kind: "enum", values}; undefined for a map's
// entry type and for names this does not follow (those values are not checked).
function resolveType(definitions, descriptor, scope, typeName) {
  const nestedEnum = descriptor.enumType?.find((e) => e.name === typeName);
  if (nestedEnum !== undefined) {
    return { kind: 'enum', values: nestedEnum.value.map((v) => v.name) };
  }
  const nested = descriptor.nestedType?.find((m) => m.name === typeName);
  if (nested !== undefined) {
    return nested.options?.mapEntry
      ? undefined : { kind: 'message', descriptor: nested, name: `${scope}.${typeName}` };
  }
  const parts = typeName.startsWith('.') ? [] : scope.split('.');
  const bare = typeName.replace(/^\./, '');
  for (let n = parts.length; n >= 0; n -= 1) {
    const name = [...parts.slice(0, n), bare].join('.');
    const definition = definitions[name];
    if (definition?.format?.endsWith('EnumDescriptorProto')) {
      return { kind: 'enum', values: definition.type.value.map((v) => v.name) };
    }
    if (definition?.format?.endsWith('DescriptorProto')) {
      return { kind: 'message', descriptor: definition.type, name };
    }
  }
  return undefined;
}

// protobufjs drops fields a message does not have, and enum names it does not know,
// without a word: refuse them instead, so a misspelt request fails the job rather than
// sending another request than the one meant.
function checkMessage(definitions, descriptor, typeName, value, where) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new JobError(`${where}: expected an object for ${typeName}`);
  }
  const fields = new Map(descriptor.field.map((f) => [f.name, f]));
  for (const [name, fieldValue] of Object.entries(value)) {
    const field = fields.get(name);
    if (field === undefined) {
      throw new JobError(`${where}: ${typeName} has no field ${JSON.stringify(name)}`);
    }
    const target = field.typeName
      ? resolveType(definitions, descriptor, typeName, field.typeName) : undefined;
    const items = field.label === 'LABEL_REPEATED' && Array.isArray(fieldValue)
      ? fieldValue : [fieldValue];
    for (const item of items) {
      if (target?.kind === 'message') {
        checkMessage(definitions, target.descriptor, target.name, item, `${where}.${name}`);
      } else if (target?.kind === 'enum' && typeof item === 'string'
                 && !target.values.includes(item)) {
        throw new JobError(`${where}.${name}: ${JSON.stringify(item)} is not a value of `
                           + `${field.typeName} (${target.values.join(', ')})`);
      }
    }
  }
}

// The full name of a request message. proto-loader gives each use of a message its own
// copy of the definition, without the full name: find the listed message whose
// descriptor is the same, preferring one in ``scope`` (the package of the service).
function typeNameOf(definitions, definition, scope) {
  const descriptor = JSON.stringify(definition.type);
  const same = Object.keys(definitions).filter(
    (k) => k.endsWith(`.${definition.type.name}`) && definitions[k].format === definition.format
      && JSON.stringify(definitions[k].type) === descriptor,
  );
  const name = same.find((k) => k === `${scope}.${definition.type.name}`) ?? same[0];
  if (name === undefined) {
    throw new JobError(`cannot find message ${definition.type.name} in the .proto files`);
  }
  return name;
}

function methodOf(definitions, service, rpc) {
  const serviceDefinition = definitions[service];
  if (serviceDefinition === undefined || serviceDefinition.format !== undefined) {
    throw new JobError(`no service ${JSON.stringify(service)} in the .proto files`);
  }
  const method = serviceDefinition[rpc];
  if (method === undefined) {
    throw new JobError(`${service} has no rpc ${JSON.stringify(rpc)}`);
  }
  if (method.requestStream) {
    throw new JobError(`${service}/${rpc} is client-streaming: not supported`);
  }
  return method;
}

function callOnce(client, method, call) {
  const metadata = new grpc.Metadata();
  if (call.key !== null && call.key !== undefined) {
    metadata.add('authorization', `Bearer ${call.key}`);
  }
  const options = { deadline: Date.now() + (call.deadlineMs ?? DEFAULT_DEADLINE_MS) };
  const request = call.request ?? {};
  return new Promise((resolve) => {
    if (!method.responseStream) {
      client.makeUnaryRequest(
        method.path, method.requestSerialize, method.responseDeserialize, request, metadata,
        options, (error, response) => {
          if (error) {
            resolve({ code: error.code, details: error.details ?? '', messages: null });
          } else {
            resolve({ code: grpc.status.OK, details: '', messages: response });
          }
        },
      );
      return;
    }
    // A server stream: count the messages; done once the status is in and, for OK, the
    // stream has ended (grpc-js emits 'status' before the last messages are read).
    const stream = client.makeServerStreamRequest(
      method.path, method.requestSerialize, method.responseDeserialize, request, metadata,
      options,
    );
    let count = 0;
    let status = null;
    let ended = false;
    const settle = () => {
      if (status !== null && (ended || status.code !== grpc.status.OK)) {
        resolve({ code: status.code, details: status.details ?? '', messages: count });
      }
    };
    stream.on('data', () => { count += 1; });
    stream.on('error', () => {}); // the same status arrives through 'status'
    stream.on('end', () => { ended = true; settle(); });
    stream.on('status', (s) => { status = s; settle(); });
  });
}

async function main() {
  let job;
  try {
    job = JSON.parse(readFileSync(0, 'utf8'));
  } catch (error) {
    throw new JobError(`stdin is not JSON: ${error.message}`);
  }
  if (typeof job?.target !== 'string' || typeof job.protoDir !== 'string'
      || !Array.isArray(job.calls)) {
    throw new JobError('the job needs "target" (string), "protoDir" (string), "calls" (array)');
  }
  const definitions = loadDefinitions(job.protoDir);
  const methods = job.calls.map((call, i) => {
    const method = methodOf(definitions, call.service, call.rpc);
    const scope = call.service.split('.').slice(0, -1).join('.');
    const requestType = typeNameOf(definitions, method.requestType, scope);
    checkMessage(definitions, method.requestType.type, requestType, call.request ?? {},
                 `calls[${i}].request`);
    return method;
  });
  const client = new grpc.Client(job.target, grpc.credentials.createInsecure());
  const results = [];
  try {
    for (const [i, call] of job.calls.entries()) {
      results.push(await callOnce(client, methods[i], call));
    }
  } finally {
    client.close();
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().catch((error) => {
  if (error instanceof JobError) {
    process.stderr.write(`call.mjs: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
});
