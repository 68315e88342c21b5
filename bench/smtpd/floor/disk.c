/* The disk work a queued and delivered message needs, and nothing else
   (bench/smtpd/floor.sh). Built twice; the name it is started under picks the part:
   queue    — what qmail-queue must do before qmail-smtpd may answer 250: in $FLOOR_DIR, create
              pid/PID exclusively, write a 1 KB message, fsync it, link it to mess/ID and fsync
              mess/, create intd/ID with an envelope, fsync it, link it to todo/ID and fsync
              todo/;
   maildir  — one Maildir delivery: create tmp/PID, write the 1 KB message, fsync it, link it
              to new/PID, unlink the tmp name and fsync new/; then remove the message's queue
              files (mess/ID, intd/ID, todo/ID), as qmail-clean would.
   ID is $FLOOR_ID, which floor/smtpd.c sets per message. No parsing, no Received line, no
   queue layout split, no scheduler. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char msg[1024];

static void die(const char *what) {
  perror(what);
  _exit(111);
}

static void put_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) die(path);
  if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0 || close(fd) < 0) die(path);
}

static void sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0 || fsync(fd) < 0 || close(fd) < 0) die(path);
}

static void queue(const char *id) {
  char a[256], b[256];
  snprintf(a, sizeof a, "pid/%d", (int)getpid());
  put_file(a, msg, sizeof msg);
  snprintf(b, sizeof b, "mess/%s", id);
  if (link(a, b) < 0) die(b);
  sync_dir("mess");
  unlink(a);
  snprintf(a, sizeof a, "intd/%s", id);
  put_file(a, "u0\0p0\0Fa@client.example\0Tbench@bench.example\0", 46);
  snprintf(b, sizeof b, "todo/%s", id);
  if (link(a, b) < 0) die(b);
  sync_dir("todo");
}

static void maildir(const char *id) {
  char a[256], b[256];
  snprintf(a, sizeof a, "tmp/%d", (int)getpid());
  put_file(a, msg, sizeof msg);
  snprintf(b, sizeof b, "new/%d", (int)getpid());
  if (link(a, b) < 0) die(b);
  unlink(a);
  sync_dir("new");
  const char *sub[] = {"mess", "intd", "todo"};
  for (int i = 0; i < 3; i++) {
    snprintf(a, sizeof a, "%s/%s", sub[i], id);
    unlink(a);
  }
}

int main(int argc, char **argv) {
  const char *dir = getenv("FLOOR_DIR"), *id = getenv("FLOOR_ID");
  const char *name = argc > 0 ? strrchr(argv[0], '/') : 0;
  name = name ? name + 1 : argc > 0 ? argv[0] : "";
  if (!dir || chdir(dir) < 0) die("FLOOR_DIR");
  if (!id) die("FLOOR_ID");
  while (read(0, msg, sizeof msg) > 0) {
  }
  memset(msg, 'x', sizeof msg);
  if (!strcmp(name, "queue")) queue(id);
  else if (!strcmp(name, "maildir")) maildir(id);
  else die("started as neither queue nor maildir");
  return 0;
}
