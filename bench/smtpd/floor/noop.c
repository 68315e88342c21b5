/* Reads its input to the end and exits 0: a program start and nothing else. */
#include <unistd.h>
int main(void) {
  char b[4096];
  while (read(0, b, sizeof b) > 0) {
  }
  return 0;
}
