// Stands in for the host's `attestgate:policy/host` import when a plugin runs natively under node
// (tests, differential checks): log lines are kept for the test to read instead of going to the
// host's log.
export const logged = [];

export function log(level, message) {
  logged.push([level, message]);
}
