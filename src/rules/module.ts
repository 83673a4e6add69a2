/**
 * Rules and alarms (layer 3): operators configure rules as data (REST /rules/v1 and NGSI-LD Rule
 * entities); alarms are Smart Data Models Alert entities with a lifecycle; actions notify by
 * webhook, MQTT and e-mail and can open Open311-like ServiceRequest entities. See docs/rules.md.
 */
import type { UrbisModule } from '../platform.ts';
import { registerRulesRoutes } from './api.ts';
import { RulesService, type RulesOptions } from './service.ts';

export function createRulesModule(opts: RulesOptions = {}): UrbisModule & { service(): RulesService | undefined } {
  let svc: RulesService | undefined;
  return {
    name: 'rules',
    async start(p) {
      svc = new RulesService(p, opts);
      await svc.start();
    },
    routes(app) {
      registerRulesRoutes(app, () => {
        if (!svc) throw new Error('rules module not started');
        return svc;
      });
    },
    async stop() {
      await svc?.stop();
    },
    service: () => svc,
  };
}

export const rulesModule = createRulesModule();
