/* floor/disk.h's two parts as programs (bench/smtpd/floor.sh): built twice, the name it is
   started under ("queue" or "maildir") picks the part. It reads its input to the end first,
   as the real programs read the message. */
#include "disk.h"

int main(int argc, char **argv) {
  const char *dir = getenv("FLOOR_DIR"), *id = getenv("FLOOR_ID");
  const char *name = argc > 0 ? strrchr(argv[0], '/') : 0;
  name = name ? name + 1 : argc > 0 ? argv[0] : "";
  if (!dir || chdir(dir) < 0) die("FLOOR_DIR");
  if (!id) die("FLOOR_ID");
  while (read(0, msg, sizeof msg) > 0) {
  }
  if (!strcmp(name, "queue")) floor_queue(id);
  else if (!strcmp(name, "maildir")) floor_maildir(id);
  else die("started as neither queue nor maildir");
  return 0;
}
