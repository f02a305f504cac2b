// A browser-style consumer: the `eventsource` package implements the WHATWG EventSource
// (reconnects by itself, sends Last-Event-ID, honours retry:, stops on 204).
// Prints one JSON line per message and "closed" when the source gives up for good.
import { writeSync } from "node:fs";
import { EventSource } from "eventsource";

const es = new EventSource(process.argv[2]);
// Synchronous: process.exit() would drop what an asynchronous pipe write still holds.
const print = (obj) => writeSync(1, JSON.stringify(obj) + "\n");
es.onmessage = (e) => print({ id: e.lastEventId, data: JSON.parse(e.data) });
es.onerror = () => {
  if (es.readyState === EventSource.CLOSED) {
    print("closed");
    process.exit(0);
  }
  print("reconnecting");
};
setTimeout(() => { print("timeout"); process.exit(1); }, 60000);
