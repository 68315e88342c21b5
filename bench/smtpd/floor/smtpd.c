/* The least an SMTP server built the way the issue prescribes can do per message
   (bench/smtpd/floor.sh): started by tcpserver for each connection, it answers every command
   with a fixed reply and, at the end of DATA, starts each program named by its arguments in
   turn (standing for qmail-queue and, for the delivery, qmail-local), hands it one byte on a
   pipe and waits for it. Before each message it sets FLOOR_ID (its pid and a count) for the
   programs that stand for the queue's and the delivery's disk work (floor/disk.c). An
   argument "@queue" or "@maildir" does that disk work in this process instead (floor/disk.h),
   in $FLOOR_DIR. Nothing is parsed. */
#include <strings.h>
#include <sys/wait.h>

#include "disk.h"

static char buf[65536];
static size_t len;

/* One line (with its LF) into out, at most max bytes kept; -1 at end of input. */
static int next_line(char *out, size_t max) {
  for (;;) {
    char *nl = memchr(buf, '\n', len);
    if (nl) {
      size_t n = (size_t)(nl - buf) + 1, keep = n < max ? n : max;
      memcpy(out, buf, keep);
      out[keep] = 0;
      memmove(buf, nl + 1, len - n);
      len -= n;
      return (int)keep;
    }
    if (len == sizeof buf) len = 0; /* an over-long line: drop it */
    ssize_t r = read(0, buf + len, sizeof buf - len);
    if (r <= 0) return -1;
    len += (size_t)r;
  }
}

static void put(const char *s) {
  if (write(1, s, strlen(s)) < 0) _exit(1);
}

static int run(const char *prog) {
  int p[2];
  if (pipe(p) < 0) return -1;
  pid_t c = fork();
  if (c < 0) return -1;
  if (c == 0) {
    dup2(p[0], 0);
    close(p[0]);
    close(p[1]);
    execl(prog, prog, (char *)0);
    _exit(111);
  }
  close(p[0]);
  if (write(p[1], "x", 1) < 0) { /* the child reads it; nothing to do */ }
  close(p[1]);
  int st;
  if (waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return 0;
}

int main(int argc, char **argv) {
  char l[1024];
  const char *dir = getenv("FLOOR_DIR");
  if (dir && chdir(dir) < 0) die("FLOOR_DIR");
  put("220 floor ESMTP\r\n");
  while (next_line(l, sizeof l - 1) > 0) {
    if (!strncasecmp(l, "QUIT", 4)) { put("221 bye\r\n"); return 0; }
    if (!strncasecmp(l, "DATA", 4)) {
      int ok = 1;
      static unsigned count;
      char id[64];
      snprintf(id, sizeof id, "%d.%u", (int)getpid(), ++count);
      setenv("FLOOR_ID", id, 1);
      put("354 go ahead\r\n");
      while (next_line(l, sizeof l - 1) > 0)
        if (!strcmp(l, ".\r\n") || !strcmp(l, ".\n")) break;
      for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "@queue")) floor_queue(id);
        else if (!strcmp(argv[i], "@maildir")) floor_maildir(id);
        else if (run(argv[i]) < 0) ok = 0;
      }
      put(ok ? "250 ok\r\n" : "451 failed\r\n");
      continue;
    }
    put("250 ok\r\n");
  }
  return 0;
}
