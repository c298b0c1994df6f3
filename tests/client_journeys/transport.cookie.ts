// Cookie transport: the session and access token travel as cookies, the CSRF token as a
// header on every state-changing request.
import { client } from './client/client.gen';
import { authRefresh } from './client/sdk.gen';
import type { SessionResponse } from './client/types.gen';

export function useSession(session: SessionResponse): void {
  client.setConfig({ headers: { 'X-CSRF-Token': session.csrf_token } });
}

export const refresh = (_session: SessionResponse) => authRefresh();
