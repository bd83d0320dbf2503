export { agentSession } from './agent-session.js';
