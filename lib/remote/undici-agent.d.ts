// Types for the deep import of undici's Agent (see client.ts).
declare module 'undici/lib/dispatcher/agent.js' {
  import { Agent } from 'undici';
  export default Agent;
}

declare module 'undici/lib/api/api-request.js' {
  import type { Dispatcher } from 'undici';
  /** undici's request(), to be called with a dispatcher as `this`. */
  function request(this: Dispatcher, opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  export default request;
}

declare module 'undici/lib/core/connect.js' {
  import { buildConnector } from 'undici';
  /** undici's connector factory (the default `connect` of a Client). */
  export default buildConnector;
}
