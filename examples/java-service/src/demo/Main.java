package demo;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/** java-service: a JDK-only HTTP service (no Maven Central needed) with a health endpoint and a version. */
public final class Main {
    private Main() {}

    static String version() {
        String fromEnv = System.getenv("APP_VERSION");
        if (fromEnv != null && !fromEnv.isEmpty()) {
            return fromEnv;
        }
        String fromJar = Main.class.getPackage().getImplementationVersion();
        return fromJar != null ? fromJar : "dev";
    }

    static String greeting(String name) {
        return "hello " + (name == null || name.isEmpty() ? "world" : name) + " from java-service " + version();
    }

    private static void reply(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = (body + "\n").getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    public static HttpServer start(int port) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/healthz", ex -> reply(ex, 200, "ok"));
        server.createContext("/version", ex -> reply(ex, 200, version()));
        server.createContext("/", ex -> {
            String query = ex.getRequestURI().getQuery();
            String name = query != null && query.startsWith("name=") ? query.substring(5) : null;
            reply(ex, ex.getRequestURI().getPath().equals("/") ? 200 : 404,
                  ex.getRequestURI().getPath().equals("/") ? greeting(name) : "not found");
        });
        server.setExecutor(Executors.newFixedThreadPool(8));
        server.start();
        return server;
    }

    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        start(port);
        System.out.println("java-service " + version() + " listening on :" + port);
    }
}
