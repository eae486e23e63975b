import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import {
  checkPostbackDestination,
  checkShopUrl,
  classifyAddress,
  dnsResolver,
  DnsTimeoutError,
  type Resolver,
} from "./url_guard.ts";

const prod = { allowLocal: false, allowedHosts: [] };

Deno.test("[url guard] accepts plain https URLs", () => {
  assert.equal(checkShopUrl("https://shop.example/ok?x=1", prod), null);
});

Deno.test("[url guard] refuses dangerous schemes, relative forms and credentials", () => {
  for (
    const bad of [
      "javascript:alert(1)",
      "data:text/html,hi",
      "file:///etc/passwd",
      "//evil.example/x",
      "/relative",
      "http://shop.example/",
      "https:/\\evil.example",
      "https://user:pw@shop.example/",
      "https://user@shop.example/",
      "https://" + "a".repeat(2048) + ".example",
      "ftp://shop.example/",
    ]
  ) {
    assert.notEqual(checkShopUrl(bad, prod), null, bad);
  }
});

Deno.test("[url guard] http is allowed only in dev mode", () => {
  assert.equal(checkShopUrl("http://localhost:3000/ok", { allowLocal: true, allowedHosts: [] }), null);
  assert.equal(checkShopUrl("http://localhost:3000/ok", prod), "must use https");
  // Each setup's refusal of a non-web scheme names what it takes.
  assert.equal(checkShopUrl("ftp://shop.example/x", prod), "must be an absolute https URL");
  assert.equal(
    checkShopUrl("ftp://shop.example/x", { ...prod, allowLocal: true }),
    "must be an absolute http or https URL",
  );
});

Deno.test("[url guard] enforces the shop's allowed hosts, with wildcards", () => {
  const rules = { allowLocal: false, allowedHosts: ["shop.example", "*.pay.example"] };
  assert.equal(checkShopUrl("https://shop.example/a", rules), null);
  assert.equal(checkShopUrl("https://SHOP.example/a", rules), null);
  assert.equal(checkShopUrl("https://eu.pay.example/a", rules), null);
  assert.equal(checkShopUrl("https://pay.example/a", rules), null);
  assert.match(checkShopUrl("https://shop.example.evil.test/a", rules)!, /not in the shop's allowed hosts/);
  assert.match(checkShopUrl("https://evilpay.example/a", rules)!, /not in the shop's allowed hosts/);
});

Deno.test("[url guard] classifies addresses", () => {
  const cases: Record<string, string> = {
    "8.8.8.8": "public",
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "172.32.0.1": "public",
    "192.168.1.1": "private",
    "100.64.0.1": "private",
    "100.127.255.255": "private",
    "169.254.169.254": "link-local",
    "224.0.0.1": "multicast",
    "0.0.0.0": "reserved",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.1": "reserved",
    "198.18.0.1": "reserved",
    "2606:4700::1111": "public",
    "::1": "loopback",
    "::": "reserved",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:7f00:1": "loopback",
    "::ffff:a9fe:a9fe": "link-local",
    "::ffff:8.8.8.8": "public",
    "64:ff9b::a00:1": "private",
    "2002:c0a8:0101::1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fe80::1": "link-local",
    "ff02::1": "multicast",
    "2001:db8::1": "reserved",
    "::127.0.0.1": "reserved",
    "1::": "reserved",
    "1:2:3": "invalid",
  };
  for (const [address, kind] of Object.entries(cases)) assert.equal(classifyAddress(address), kind, address);
});

const noDns: Resolver = () => Promise.resolve([]);
const check = (url: string, allowLocal = false, resolve: Resolver = noDns) =>
  checkPostbackDestination(new URL(url), { allowLocal, resolve });

Deno.test("[url guard] refuses private postback hosts in every spelling", async () => {
  for (
    const spelling of [
      "https://127.0.0.1/",
      "https://2130706433/", // decimal
      "https://0x7f000001/", // hex
      "https://0177.0.0.1/", // octal
      "https://0x7f.1/", // short hex form
      "https://127.1/",
      "https://[::1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://[::ffff:7f00:1]/",
      "https://[0:0:0:0:0:ffff:a9fe:a9fe]/",
      "https://169.254.169.254/latest/meta-data",
      "https://10.0.0.1/",
      "https://100.64.1.1/",
      "https://[fe80::1]/",
      "https://[fd00::1]/",
      "https://224.0.0.1/",
      "https://0.0.0.0/",
      "https://localhost/",
      "https://api.localhost/",
    ]
  ) {
    assert.notEqual(await check(spelling), null, spelling);
  }
});

Deno.test("[url guard] resolves names and refuses any private answer", async () => {
  const dns: Record<string, string[]> = {
    "shop.example": ["93.184.216.34"],
    "sneaky.example": ["93.184.216.34", "10.0.0.5"],
    "rebind.example": ["::ffff:127.0.0.1"],
  };
  const resolve: Resolver = (h) => Promise.resolve(dns[h] ?? []);
  assert.equal(await check("https://shop.example/pb", false, resolve), null);
  assert.match((await check("https://sneaky.example/pb", false, resolve))!, /private address/);
  assert.match((await check("https://rebind.example/pb", false, resolve))!, /loopback address/);
  assert.match((await check("https://nowhere.example/pb", false, resolve))!, /does not resolve/);
});

Deno.test("[url guard] dev mode allows loopback but still refuses other private ranges", async () => {
  assert.equal(await check("http://127.0.0.1:8000/pb", true), null);
  assert.equal(await check("http://localhost:8000/pb", true), null);
  assert.notEqual(await check("http://10.0.0.1/pb", true), null);
  assert.notEqual(await check("http://169.254.169.254/", true), null);
});

Deno.test("[url guard] a name server that never answers costs a lookup its time limit, then a DnsTimeoutError", async () => {
  // A real name server on loopback that takes every query and answers none.
  const silent = dgram.createSocket("udp4");
  let queries = 0;
  silent.on("message", () => queries++);
  await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
  try {
    const resolve = dnsResolver({ timeoutMs: 300, nameServer: { ipAddr: "127.0.0.1", port: silent.address().port } });
    const started = performance.now();
    await assert.rejects(
      check("https://shop.example/pb", false, resolve),
      (err) => err instanceof DnsTimeoutError && err.problem === "host shop.example got no DNS answer within 0.3 s",
    );
    const took = performance.now() - started;
    assert.ok(took >= 250 && took < 2_000, `the lookup took ${took} ms`);
    assert.ok(queries > 0, "the lookup reached the name server");
  } finally {
    silent.close();
  }
});

/** The end of a DNS message's first question: past its name's labels, its type and its class. */
function endOfQuestion(message: Uint8Array): number {
  let i = 12;
  while (message[i] !== 0) i += message[i] + 1;
  return i + 1 + 4;
}

Deno.test("[url guard] a name server that answers A and drops AAAA costs a lookup the grace, not the time limit", async () => {
  // A real name server on loopback: every A query gets 93.184.216.34, AAAA queries get no answer at all.
  const server = dgram.createSocket("udp4");
  server.on("message", (query, from) => {
    const end = endOfQuestion(query);
    if (query.readUInt16BE(end - 4) !== 1) return;
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2); // the query's id
    header.writeUInt16BE(0x8180, 2); // a response, recursion available, no error
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(1, 6); // one answer
    // The answer: the question's name (a pointer to it), type A, class IN, 60 s, four bytes of address.
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
    server.send(Buffer.concat([header, query.subarray(12, end), answer]), from.port, from.address);
  });
  await new Promise<void>((resolve) => server.bind(0, "127.0.0.1", resolve));
  try {
    const nameServer = { ipAddr: "127.0.0.1", port: server.address().port };
    const resolve = dnsResolver({ timeoutMs: 3_000, graceMs: 200, nameServer });
    const started = performance.now();
    assert.deepEqual(await resolve("shop.example"), ["93.184.216.34"]);
    const took = performance.now() - started;
    assert.ok(took >= 150 && took < 1_500, `the lookup took ${took} ms`);
    assert.equal(await check("https://shop.example/pb", false, resolve), null);
  } finally {
    server.close();
  }
});
