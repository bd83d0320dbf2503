export { agentSession } from './agent-session.js';
export { sessionNotification } from './notification.js';
