// The fastest HTTP/1.1 keep-alive server we can put in front of the load
// generator: a canned 1 KiB answer to every GET (headers alone to a HEAD),
// no parsing beyond finding where each request ends. Measuring the
// generator against it bounds what the generator itself can drive.
// Usage: node null_responder.js [port]; prints the port it listens on.
const net = require("net");

const headers = Buffer.from(
  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n" +
    "x-artifact-duration: 1000\r\n\r\n",
);
const getAnswer = Buffer.concat([headers, Buffer.alloc(1024, 0x61)]);

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = "";
  socket.on("data", (chunk) => {
    pending += chunk.toString("latin1");
    const answers = [];
    let end;
    while ((end = pending.indexOf("\r\n\r\n")) >= 0) {
      answers.push(pending.startsWith("HEAD ") ? headers : getAnswer);
      pending = pending.slice(end + 4);
    }
    if (answers.length) socket.write(answers.length === 1 ? answers[0] : Buffer.concat(answers));
  });
  socket.on("error", () => {});
});

server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(server.address().port);
});
