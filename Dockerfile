# The mqgate demo app. Build from the repository root: docker build -t mqgate .
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY examples ./examples
RUN npm ci --no-audit --no-fund && npx tsc -b
ENV MQGATE_TCP_PORT=3563 MQGATE_WEBSOCKET_PORT=3653
EXPOSE 3563 3653 9563
# Same command as `npm start`, minus the build done above (docker-compose.yml runs `mqgate` instead).
CMD ["node", "packages/demo/dist/main.js"]
