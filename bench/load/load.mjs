// @ts-check
// The load generator: raw MQTT 3.1.1 clients (load/client.mjs; MQTT.js and @mqgate/sdk for `sdkrr`), driven by the runner over IPC.
// One process; every command runs to completion and answers with numbers. One file per mode
// under load/modes/; the idle and session pools live here, across commands.
import { serveIpc } from '../lib/common.mjs';
import { rr } from './modes/closed-loop.mjs';
import { open } from './modes/open-loop.mjs';
import { idleCommands } from './modes/idle.mjs';
import { connrate } from './modes/connection-rate.mjs';
import { fanout } from './modes/fan-out.mjs';
import { sessionCommands } from './modes/sessions.mjs';
import { resumeCommands } from './modes/resume.mjs';
import { sdkrr } from './modes/sdk.mjs';

serveIpc({ rr, sdkrr, open, ...idleCommands(), connrate, fanout, ...sessionCommands(), ...resumeCommands(), mem: () => process.memoryUsage() });
process.send({ type: 'ready', pid: process.pid });
