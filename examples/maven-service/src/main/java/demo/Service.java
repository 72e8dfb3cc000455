package demo;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * java-service: answers /actuator/health (UP only while its database accepts connections) and
 * /version. The database is the one SPRING_DATASOURCE_URL names (jdbc:postgresql://HOST:PORT/DB).
 */
public final class Service {
  private Service() {}

  /** The health document: UP when the datasource's host accepts a TCP connection. */
  static String health(Map<String, String> env) {
    String url = env.get("SPRING_DATASOURCE_URL");
    if (url == null || !url.startsWith("jdbc:")) {
      return "{\"status\":\"DOWN\",\"db\":\"SPRING_DATASOURCE_URL is not set\"}";
    }
    URI db = URI.create(url.substring("jdbc:".length()));
    int port = db.getPort() > 0 ? db.getPort() : 5432;
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress(db.getHost(), port), 2000);
      return "{\"status\":\"UP\"}";
    } catch (IOException e) {
      return "{\"status\":\"DOWN\",\"db\":\"unreachable\"}";
    }
  }

  private static void answer(HttpExchange exchange, int code, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", "application/json");
    exchange.sendResponseHeaders(code, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }

  public static void main(String[] args) throws IOException {
    int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
    HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
    server.createContext(
        "/actuator/health",
        exchange -> {
          String body = health(System.getenv());
          answer(exchange, body.contains("\"UP\"") ? 200 : 503, body);
        });
    server.createContext(
        "/version",
        exchange -> answer(exchange, 200, System.getenv().getOrDefault("APP_VERSION", "dev")));
    server.start();
    System.out.println("java-service listening on " + port);
  }
}
