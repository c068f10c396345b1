// Test guest for init calls and the replay log: keeps a configuration set by an init call.
// It must never flush from an init call; init_nondeterministic deliberately depends on the
// instance's history, so replaying it into a new instance must be detected as a divergence.
//
// init_config (init call; payload = configuration): stores the payload, answers it reversed.
// init_nondeterministic (init call): answers u32 LE, the number of calls of any export this
//   instance has served, this one included (1 on a fresh instance, then 2, 3, ...).
// config (view): answers the stored configuration (empty before any init_config).
// _start (block): flushes config -> the stored configuration (an empty one deletes the key).
#include <stdlib.h>
#include <string.h>

#include "tandem_guest.h"

// Set by init_config; replayed into every new instance by the host.
static uint8_t *config;
static uint32_t config_len;

// Every export call counts. A replay runs only the logged init calls, so an instance that had
// served anything before init_nondeterministic answered more than its replay will: a counter of
// init_nondeterministic calls alone would replay identically and prove nothing.
static uint32_t calls_served;

TG_EXPORT("init_config") int32_t InitConfig(void) {
  calls_served++;
  tg_input input = tg_load_input();
  free(config);
  config_len = input.payload_len;
  config = tg_malloc(config_len);
  memcpy(config, input.payload, config_len);
  tg_input_free(&input);

  uint8_t *reversed = tg_malloc(config_len);
  for (uint32_t i = 0; i < config_len; ++i) reversed[i] = config[config_len - 1 - i];
  int32_t answer = tg_answer(reversed, config_len);
  free(reversed);
  return answer;
}

TG_EXPORT("init_nondeterministic") int32_t InitNondeterministic(void) {
  uint8_t answer[4];
  tg_write_u32le(answer, ++calls_served);
  return tg_answer(answer, sizeof answer);
}

TG_EXPORT("config") int32_t Config(void) {
  calls_served++;
  return tg_answer(config, config_len);
}

TG_EXPORT("_start") void Start(void) {
  calls_served++;
  tg_write("config", 6, config, config_len);
}
