// @ts-check
// The request/reply topic schemes of the servers under test (mqgate-style gates and mosquitto
// with its responder), and the checks of a reply: shared by the closed-loop, open-loop and
// fan-out modes.
export const lastLevel = (topic) => topic.slice(topic.lastIndexOf('/') + 1);

/**
 * Topic scheme: `gate` (mqant: reply on the request topic), `mosquitto` (reply/<cid>/... ) or
 * `v5` (MQTT 5: requests on `echo/HD_echo`, replies on the Response Topic `r/<cid>`, matched by
 * Correlation Data; see the rr mode).
 */
export function topics(style, clientId) {
  if (style === 'v5') {
    return {
      request: (mod) => `${mod}/HD_${mod}`,
      responseTopic: `r/${clientId}`,
      subscribe: null,
      broadcast: (n) => `echo/HD_broadcast/${n}`,
      pushTopic: 'bench/push',
    };
  }
  if (style === 'mosquitto') {
    return {
      request: (mod, n) => `${mod}/${clientId}/${n}`,
      subscribe: [`reply/${clientId}/#`],
      broadcast: (n) => `bcast/${clientId}/${n}`,
      pushTopic: 'bcast/all',
    };
  }
  return { request: (mod, n) => `${mod}/HD_${mod}/${n}`, subscribe: null, broadcast: (n) => `echo/HD_broadcast/${n}`, pushTopic: 'bench/push' };
}

export function checkReply(p, expected, stats) {
  try {
    const env = JSON.parse(p.payload.toString());
    if (env.Error !== '' || JSON.stringify(env.Result) !== expected) {
      stats.bad++;
      stats.badSample ??= p.payload.toString().slice(0, 200);
    }
  } catch {
    stats.bad++;
    stats.badSample ??= p.payload.toString().slice(0, 200);
  }
}

export function connectedSetup(style) {
  return async (c) => {
    const t = topics(style, c.clientId);
    if (t.subscribe) await c.subscribe(t.subscribe);
  };
}
